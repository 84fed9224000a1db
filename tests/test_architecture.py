"""Layout rules from ARCHITECTURE.md that code review alone would let slip."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_engine_never_imports_streamlit():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "bgcore").rglob("*.py") if "streamlit" in _imports(p)]
    assert offenders == []


def test_pickles_are_only_loaded_through_the_cache_guard():
    for path in (ROOT / "bgcore").rglob("*.py"):
        imports = _imports(path)
        assert not {"pickle", "dill", "cloudpickle"} & imports, path
        if "joblib" in imports:
            text = path.read_text()
            assert text.count("joblib.load(") == text.count("joblib.load(require_cache_path("), path


def test_pages_are_thin_and_use_bgcore():
    for page in [ROOT / "app.py", *(ROOT / "app_pages").glob("*.py")]:
        imports = _imports(page)
        if not page.name.startswith("_"):  # _shared.py holds widgets only
            assert "bgcore" in imports, page
        assert not {"numpy", "scipy", "sklearn"} & imports, f"{page.name} computes; move it into bgcore"


def test_no_unsafe_html_in_pages():
    for page in [ROOT / "app.py", *(ROOT / "app_pages").glob("*.py")]:
        assert "unsafe_allow_html" not in page.read_text(), page


def test_streamlit_binds_to_localhost():
    assert 'address = "localhost"' in (ROOT / ".streamlit" / "config.toml").read_text()


def test_no_legacy_pages_directory():
    # Streamlit auto-discovers pages/ as a legacy multipage app, which routes direct links around app.py
    assert not (ROOT / "pages").exists()


def test_server_defaults_are_safe():
    config = (ROOT / ".streamlit" / "config.toml").read_text()
    assert "enableXsrfProtection = true" in config and "maxUploadSize = 256" in config
    assert '"cache"' in config.split("folderWatchBlacklist")[1].splitlines()[0]
