"""The benchmark runner pastes stored results into the README's marked blocks (numbers never typed by hand)."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_runner():
    spec = importlib.util.spec_from_file_location("bench_runner", ROOT / "bench" / "__main__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_blocks_are_replaced_by_stored_results(cache_dir, tmp_path):
    runner = load_runner()
    (cache_dir / "bench").mkdir(parents=True)
    (cache_dir / "bench" / "dashboard.md").write_text("`python bench/bench_dashboard.py` (...)\n\n| a |\n|---|\n| 1 |\n")
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- bench:dashboard -->\nold table\n<!-- /bench:dashboard -->\n"
                      "<!-- bench:models -->\nkept\n<!-- /bench:models -->\nend\n")
    assert runner.readme(readme) == 0
    text = readme.read_text()
    assert "old table" not in text and "| 1 |" in text and "kept" in text  # no stored models result: unchanged
    assert text.startswith("intro\n<!-- bench:dashboard -->\n`python bench/bench_dashboard.py`")
    (cache_dir / "bench" / "models.quick.md").write_text("quick models\n")
    runner.readme(readme)
    assert "quick models" in readme.read_text()  # a quick result fills a block with no full result
    (cache_dir / "bench" / "models.md").write_text("`python bench/bench_models.py` (full)\n\n  cohort lightgbm fit 13 s\n"
                                                   "  cohort naive fit 0 s\n\nfull models\n\n| a |\n|---|\n| 2 |\n")
    runner.readme(readme)
    text = readme.read_text()
    assert "full models" in text and "quick models" not in text and "| 2 |" in text
    assert "lightgbm fit" not in text and "\n\n\n" not in text  # progress lines stay in cache/bench/models.md only
    assert set(runner.BENCHES) >= {"data", "eval", "jobs", "models", "foundation", "dashboard", "accuracy", "scale"}
    assert all((ROOT / "bench" / script).is_file() for script, _, _ in runner.BENCHES.values())


def test_readme_has_a_block_for_the_foundation_and_dashboard_benchmarks():
    text = (ROOT / "README.md").read_text()
    for name in ("foundation", "dashboard"):
        assert f"<!-- bench:{name} -->" in text and f"<!-- /bench:{name} -->" in text


def test_arguments_after_a_double_dash_go_to_one_benchmark(monkeypatch):
    runner = load_runner()
    calls = []
    monkeypatch.setattr(runner, "run", lambda name, quick, extra=(): calls.append((name, quick, list(extra))) or True)
    assert runner.main(["accuracy", "--", "--redo", "gru"]) == 0
    assert runner.main(["models", "--quick"]) == 0
    assert calls == [("accuracy", False, ["--redo", "gru"]), ("models", True, [])]
    with pytest.raises(SystemExit):
        runner.main(["data", "eval", "--", "--repeat", "1"])
