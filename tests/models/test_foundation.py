"""Foundation families: weights resolution, DFM pretraining, zero-shot / full / LoRA, storage, the goals."""

import json
import shutil

import numpy as np
import pytest

from bgcore.data.cohort import load_cohort
from bgcore.data.dataset import Dataset
from bgcore.data.schema import DataError
from bgcore.data.splits import temporal_split
from bgcore.evaluation.protocol import context_batch, make_origins
from bgcore.models import registry
from bgcore.models.base import Forecaster
from bgcore.models.foundation import weights
from bgcore.models.foundation.chronos import tiny_checkpoint
from bgcore.models.foundation.pretrain import pretrain_dfm
from bgcore.store import load_model, run_record, runs_root
from bgcore.training.goals import train
from tests.conftest import make_frame, make_patients

IDS = ("a1", "a2", "a3")


@pytest.fixture(scope="module")
def data():
    return Dataset("t", make_frame(IDS, days=6, seed=3), make_patients(IDS))


@pytest.fixture
def parts(data):
    return temporal_split(data.frame)


@pytest.fixture
def batch(data):
    rows = make_origins(data.frame)["row"].to_numpy()[::6]
    return context_batch(data.frame, rows, 288)


@pytest.fixture
def dfm_tiny(cache_dir):
    """A DFM pretrained here from scratch, tiny: 3 steps on 2 virtual patients x 2 days."""
    return pretrain_dfm("dfm-t", size="tiny", steps=3, batch_size=8, n_patients=2, days=2)


def files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# --- weights -----------------------------------------------------------------------
def test_weights_resolve_from_cache_folder_and_hf_cache(cache_dir, tmp_path, monkeypatch):
    tiny = tiny_checkpoint()
    found = weights.resolve("tiny-chronos2", ("Chronos2Pipeline",))
    assert found.source == "cache" and found.folder == tiny and len(found.sha256) == 64
    assert weights.resolve(str(tiny)).source == "folder"
    # a local Hugging Face cache entry, found offline
    import huggingface_hub.constants as hf_constants
    hub = tmp_path / "hub"
    snapshot = hub / "models--bgtest--tiny" / "snapshots" / "0123abcd"
    shutil.copytree(tiny, snapshot)
    (hub / "models--bgtest--tiny" / "refs").mkdir()
    (hub / "models--bgtest--tiny" / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(hub))
    from_hub = weights.resolve("bgtest/tiny")
    assert from_hub.source == "hf-cache" and from_hub.folder == snapshot and from_hub.sha256 == found.sha256
    assert "local Hugging Face cache" in from_hub.describe()


def test_weights_refusals(cache_dir, tmp_path):
    with pytest.raises(DataError, match="no local weights.*nothing is downloaded"):
        weights.resolve("nobody/nothing")
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text("{}")
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04not really")
    with pytest.raises(DataError, match="only safetensors"):
        weights.resolve(str(pickled))
    with pytest.raises(DataError, match="ChronosBoltPipeline"):
        weights.resolve(str(tiny_checkpoint()), ("ChronosBoltPipeline",))
    with pytest.raises(DataError, match="no local weights"):
        registry.get("chronos_bolt")(weights="nobody/nothing").fit(make_frame(days=2))


def test_registry_says_which_weights_are_missing(cache_dir):
    rows = {r["name"]: r for r in registry.describe()}
    for name in ("chronos2", "chronos_bolt", "chronos_t5", "moirai"):
        assert rows[name]["needs_user_weights"] and rows[name]["family"] == "foundation"
        assert not rows[name]["available"] and "not found locally" in rows[name]["reason"]
    assert rows["dfm"]["from_scratch"] and rows["dfm"]["available"], rows["dfm"]["reason"]  # shipped checkpoint
    assert rows["dfm"]["covariates"] == "insulin+carbs" and rows["dfm"]["probabilistic"]
    names = {c.name for c in registry.list(available_only=True)}
    assert "dfm" in names and "chronos2" not in names
    assert {"chronos2", "chronos_bolt", "chronos_t5"} <= {c.name for c in registry.list(installed_only=True)}


def test_shipped_dfm_has_a_model_card_made_by_the_pretrain_command():
    assert "dfm-small" in weights.shipped()
    folder = weights.SHIPPED / "dfm-small"
    card = json.loads((folder / "card.json").read_text())
    assert card["command"].startswith("python -m bgcore pretrain") and card["seed"] == 0
    assert card["sha256"] == weights.resolve("dfm-small").sha256
    assert (folder / "model.safetensors").stat().st_size < 8e6 and 1e6 < card["parameters"] < 7e6
    assert card["loss_last"] < card["loss_first"]
    assert "Corpus" in (folder / "MODEL_CARD.md").read_text()


# --- the DFM end to end ------------------------------------------------------------
def test_dfm_pretrain_writes_checkpoint_and_card(dfm_tiny, cache_dir):
    folder = cache_dir / "weights" / "dfm-t"
    assert files(folder) == ["MODEL_CARD.md", "card.json", "config.json", "model.safetensors"]
    assert dfm_tiny["steps"] == 3 and dfm_tiny["corpus"]["patients"] == 2 and dfm_tiny["loss_history"]
    assert "--size tiny --steps 3" in dfm_tiny["command"]
    assert weights.resolve("dfm-t", ("Chronos2Pipeline",)).sha256 == dfm_tiny["sha256"]


def test_dfm_zero_shot_full_and_lora_store_only_what_changed(dfm_tiny, parts, batch, cache_dir):
    cls = registry.get("dfm")
    train_part = parts["train"]
    zero = cls(weights="dfm-t", mode="zero_shot").fit(train_part)
    folder = zero.save(cache_dir / "m" / "zero")
    assert files(folder) == ["config.json", "state.json"]  # a reference to the weights, checked by sha256
    np.testing.assert_array_equal(Forecaster.load(folder).predict_arrays(batch).point,
                                  zero.predict_arrays(batch).point)
    assert zero.weights_info()["delta"] == "none" and "dfm-t" in zero.weights_info()["description"]

    full = cls(weights="dfm-t", mode="full", steps=2, batch_size=8, learning_rate=1e-3).fit(train_part)
    folder = full.save(cache_dir / "m" / "full")
    assert "model/model.safetensors" in files(folder)
    assert not np.array_equal(full.predict_arrays(batch).point, zero.predict_arrays(batch).point)

    one = train_part[train_part["patient_id"] == "a2"].reset_index(drop=True)
    lora = zero.fine_tune(one)  # per-patient LoRA adapter on the pretrained weights
    folder = lora.save(cache_dir / "m" / "lora")
    assert "adapter/adapter_model.safetensors" in files(folder) and "model/model.safetensors" not in files(folder)
    adapter = (folder / "adapter" / "adapter_model.safetensors").stat().st_size
    assert adapter < (cache_dir / "weights" / "dfm-t" / "model.safetensors").stat().st_size
    loaded = Forecaster.load(folder)
    np.testing.assert_allclose(loaded.predict_arrays(batch).point, lora.predict_arrays(batch).point, atol=1e-4)
    assert loaded.weights_info()["delta"] == "lora" and len(loaded.weights_info()["lineage"]) == 2

    tuned_full = full.fine_tune(one)  # on top of changed weights: stored as full weights
    assert tuned_full.weights_info()["delta"] == "full"
    out = tuned_full.predict_arrays(batch)
    assert np.isfinite(out.point).all() and out.quantiles.shape == (len(batch), 24, 7)
    assert (np.diff(out.quantiles, axis=2) >= 0).all()


def test_changed_weights_are_detected_on_load(dfm_tiny, parts, cache_dir):
    model = registry.get("dfm")(weights="dfm-t").fit(parts["train"])
    folder = model.save(cache_dir / "m" / "zero")
    weights_file = cache_dir / "weights" / "dfm-t" / "model.safetensors"
    data = bytearray(weights_file.read_bytes())
    data[-1] ^= 1
    weights_file.write_bytes(bytes(data))
    with pytest.raises(DataError, match="have changed"):
        Forecaster.load(folder)


def test_pretraining_reports_progress_and_cancel_leaves_nothing(cache_dir):
    seen = []
    with pytest.raises(InterruptedError):
        pretrain_dfm("dfm-c", size="tiny", steps=50, batch_size=8, n_patients=2, days=2,
                     progress=lambda f, m: seen.append((f, m)), cancel=lambda: len(seen) > 3)
    assert not (cache_dir / "weights" / "dfm-c").exists()
    assert seen and all(0 <= f <= 1 for f, _ in seen) and any("simulated" in m for _, m in seen)


def test_pretraining_corpus_is_not_the_cohort(cache_dir):
    from bgcore.data.population import corpus, population_specs
    specs = population_specs(40)
    assert specs == population_specs(40) and len({json.dumps(s["physiology"]) for s in specs}) == 40
    assert all(0.65 <= f <= 1.35 for s in specs for f in s["physiology"].values())
    frame, card = corpus(2, 2)
    cohort = load_cohort()
    assert not set(frame["patient_id"]) & set(cohort.patient_ids)
    first = cohort.frame[cohort.frame["patient_id"] == specs[0]["subject"]]["cgm"].to_numpy()[:288]
    mine = frame[frame["patient_id"] == "pop0000"]["cgm"].to_numpy()[:288]
    assert not np.allclose(np.nan_to_num(first), np.nan_to_num(mine))  # another life, not the cohort's
    assert corpus(2, 2)[1] == card  # cached


def test_corpus_takes_only_train_parts_of_imported_datasets(cache_dir, fixtures):
    from bgcore.data.datasets import import_path
    from bgcore.data.population import corpus
    dataset, _ = import_path(fixtures / "generic.csv", name="mine")
    frame, card = corpus(1, 1, datasets=("mine",))
    mine = frame[frame["patient_id"].str.startswith("mine.")]
    train_end = temporal_split(dataset.frame)["train"].groupby("patient_id", observed=True)["time"].max()
    assert len(mine) and mine["time"].max() <= train_end.max()
    assert any("dataset mine: train parts" in s for s in card["sources"])


# --- through the training goals -------------------------------------------------------
def test_multi_then_per_patient_lora_fine_tune_runs(dfm_tiny, data, cache_dir):
    multi = train("multi", "dfm", {"weights": "dfm-t", "mode": "zero_shot"}, dataset=data)
    assert multi["weights"]["all"]["spec"] == "dfm-t" and multi["status"] == "finished"
    tuned = train("finetune", "dfm", {"finetune_steps": 2, "batch_size": 8}, patients=["a1", "a3"], dataset=data,
                  parent=multi["run_id"])
    record = run_record(tuned["run_id"])
    assert record["models"] == ["a1", "a3"] and record["parent_run"] == multi["run_id"]
    assert tuned["weights"]["a1"]["delta"] == "lora"
    for pid in ("a1", "a3"):
        folder = runs_root() / tuned["run_id"] / "models" / pid
        assert (folder / "adapter" / "adapter_model.safetensors").is_file() and not (folder / "model").exists()
    assert load_model(tuned["run_id"], "a1").finetune_steps == 2


# --- TinyTimeMixer and TimesFM ---------------------------------------------------------
@pytest.mark.parametrize("name", ["ttm", "timesfm"])
def test_pretrain_then_zero_shot_and_fine_tune_from_the_weights(name, parts, batch, cache_dir):
    cls = registry.get(name)
    settings = cls.get_test_params()
    folder = cls(**settings).pretrain(parts["train"], f"{name}-pre")
    assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
    zero = cls(**{**settings, "weights": f"{name}-pre", "mode": "zero_shot"}).fit(parts["train"])
    assert zero.weights_info()["delta"] == "none" and zero.weights_info()["source"] == "cache"
    tuned = cls(**{**settings, "weights": f"{name}-pre", "mode": "full"}).fit(parts["train"])
    assert tuned.weights_info()["delta"] == "full" and len(tuned.weights_info()["lineage"]) == 2
    assert not np.array_equal(zero.predict_arrays(batch).point, tuned.predict_arrays(batch).point)
    other = "timesfm" if name == "ttm" else "ttm"
    with pytest.raises(DataError, match="model_type|weights are a"):
        registry.get(other)(weights=f"{name}-pre").fit(parts["train"])


def test_ttm_weights_with_a_longer_context_are_padded(parts, batch, cache_dir):
    """Published TTM checkpoints read 512 steps; the protocol gives 288: the rest is masked padding."""
    cls = registry.get("ttm")
    model = cls(size="tiny", context_steps=512, steps=2, batch_size=8, stride_min=60).fit(parts["train"])
    model.net_.save_pretrained(cache_dir / "weights" / "ttm-512")
    zero = cls(weights="ttm-512", mode="zero_shot").fit(parts["train"])
    out = zero.predict_arrays(batch)
    assert zero._context() == 512 and np.isfinite(out.point).all() and out.point.shape == (len(batch), 24)


def test_moirai_config_cannot_name_arbitrary_classes(cache_dir):
    from bgcore.models.foundation.moirai import tiny_moirai
    folder = tiny_moirai(cache_dir / "weights" / "moirai-evil")
    config = json.loads((folder / "config.json").read_text())
    config["distr_output"] = {"_target_": "os.system", "command": "echo pwned"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(DataError, match="unknown Moirai output distribution"):
        registry.get("moirai")(weights="moirai-evil").fit(make_frame(days=2))
    with pytest.raises(DataError, match="not a Moirai model"):
        registry.get("moirai")(weights=str(tiny_checkpoint())).fit(make_frame(days=2))


def test_lag_llama_limits_and_refusals(parts):
    cls = registry.get("lag_llama")
    assert cls.get_tags()["cost"] and cls.get_tags()["probabilistic"]
    with pytest.raises(DataError, match="limited to 100"):
        cls(**{**cls.get_test_params(), "num_samples": 1000}).fit(parts["train"])
    with pytest.raises(DataError, match="exceed the protocol"):
        cls(**{**cls.get_test_params(), "context_steps": 200}).fit(parts["train"])
    with pytest.raises(DataError, match="published checkpoint is a pickle"):
        cls(weights="lag-llama").fit(parts["train"])


def test_lag_llama_incremental_decoding_equals_the_full_forward_pass(parts):
    """Each decoded step (new token against cached keys/values) is what the full forward pass gives."""
    import torch

    from bgcore.models.features import training_examples
    from bgcore.models.foundation.lag_llama import sample_paths
    model = registry.get("lag_llama")(**{**registry.get("lag_llama").get_test_params(), "steps": 20}).fit(parts["train"])
    examples, _ = training_examples(parts["train"], np.arange(1, 25), model._context(), stride_steps=37)
    past, mask = (torch.from_numpy(a[:5]) for a in model._arrays(examples.cgm))
    mask = mask.float()
    with torch.no_grad():
        path = sample_paths(model.net_, past, mask, 1, draw=lambda distribution: distribution.mean)[:, 0]
        params, loc, scale = model.net_(past_target=past, past_observed_values=mask, future_target=path)
        full = model.net_.distr_output.distribution(params, loc, scale).mean[:, -24:]
        paths = sample_paths(model.net_, past, mask, 6)
    assert path.shape == (5, 24) and float(path.std()) > 0  # a forecast that moves, not a constant
    np.testing.assert_allclose(path.numpy(), full.numpy(), rtol=1e-5, atol=1e-3)
    assert paths.shape == (5, 6, 24) and float(paths.std(dim=1).mean()) > 0  # sample paths differ


def test_context_gaps_are_forward_filled_and_masked():
    from bgcore.models.features import observed_past
    nan = np.nan
    past, mask = observed_past(np.array([[nan, 100.0, nan, nan, 130.0], [nan, nan, nan, nan, nan]]))
    np.testing.assert_array_equal(past, [[100, 100, 100, 100, 130], [0, 0, 0, 0, 0]])  # no zeros inside a record
    np.testing.assert_array_equal(mask, [[False, True, False, False, True], [False] * 5])
