import json

import pandas as pd
import pytest

from bgcore.data.datasets import datasets_root, import_path, list_datasets, load_dataset
from bgcore.data.schema import DataError
from bgcore.paths import atomic_folder, cache_root, recover_folders


def test_cache_root_follows_environment(cache_dir):
    assert cache_root() == cache_dir and cache_dir.is_dir()


def test_import_list_load_round_trip(fixtures):
    dataset, report = import_path(fixtures / "dexcom_clarity.csv", name="jane")
    assert report.format == "dexcom" and report.patients == 1
    names = [d["name"] for d in list_datasets()]
    assert names == ["virtual", "jane"]
    loaded = load_dataset("jane", verify=True)
    pd.testing.assert_frame_equal(loaded.frame, dataset.frame)
    manifest = json.loads((datasets_root() / "jane" / "manifest.json").read_text())
    assert manifest["rows"] == 5 and manifest["files"][0]["sha256"] == __import__("hashlib").sha256(
        (fixtures / "dexcom_clarity.csv").read_bytes()).hexdigest()
    assert manifest["report"]["units"] == "mg/dL"


def test_failed_import_leaves_earlier_imports_untouched(fixtures):
    import_path(fixtures / "generic.csv", name="mine")
    before = {p.name: p.read_bytes() for p in (datasets_root() / "mine").iterdir()}
    with pytest.raises(DataError, match="plausible range"):
        import_path(fixtures / "generic_out_of_range.csv", name="mine", format="csv", replace=True)
    after = {p.name: p.read_bytes() for p in (datasets_root() / "mine").iterdir()}
    assert before == after
    assert [p.name for p in datasets_root().iterdir()] == ["mine"]  # no temporary folders left behind


def test_existing_name_needs_replace(fixtures):
    import_path(fixtures / "generic.csv", name="mine")
    with pytest.raises(DataError, match="already exists"):
        import_path(fixtures / "dexcom_clarity.csv", name="mine")
    dataset, _ = import_path(fixtures / "dexcom_clarity.csv", name="mine", replace=True)
    assert load_dataset("mine").patient_ids == ["dexcom_clarity"]


@pytest.mark.parametrize("name", ["virtual", "../escape", "a/b"])
def test_bad_dataset_names(fixtures, name):
    with pytest.raises(DataError):
        import_path(fixtures / "generic.csv", name=name)


def test_unknown_dataset_lists_known_ones():
    with pytest.raises(DataError, match="expected one of: virtual"):
        load_dataset("nope")


def test_crash_inside_atomic_write_keeps_old_folder(tmp_path):
    final = tmp_path / "d"
    final.mkdir()
    (final / "x").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_folder(final, replace=True) as tmp:
            (tmp / "x").write_text("new")
            raise RuntimeError("crash")
    assert (final / "x").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_recover_after_crash_between_renames(tmp_path):
    old = tmp_path / ".old-d-1234abcd"
    old.mkdir()
    (old / "x").write_text("old")
    recover_folders(tmp_path)
    assert (tmp_path / "d" / "x").read_text() == "old" and not old.exists()


def test_tampered_files_are_detected(fixtures):
    import_path(fixtures / "generic.csv", name="mine")
    data = datasets_root() / "mine" / "data.parquet"
    frame = pd.read_parquet(data)
    frame.iloc[:2].to_parquet(data)
    with pytest.raises(DataError, match="manifest hash"):
        load_dataset("mine", verify=True)
    with pytest.raises(DataError, match="wrong number of rows"):
        load_dataset("mine")


def test_incomplete_folder_is_not_listed(fixtures):
    import_path(fixtures / "generic.csv", name="mine")
    (datasets_root() / "half").mkdir()
    (datasets_root() / "half" / "data.parquet").write_bytes(b"partial")
    assert [d["name"] for d in list_datasets()] == ["virtual", "mine"]
    with pytest.raises(DataError, match="no dataset 'half'"):
        load_dataset("half")
