"""The served dashboard in a real headless browser (Debian Chromium driven by Playwright)."""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]

if CHROMIUM is None and os.environ.get("CI"):
    raise RuntimeError("CI must run the browser test: install Debian chromium (.ci/run does)")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (apt-get install chromium)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(cache_dir):
    port = _free_port()
    env = dict(os.environ, BGCORE_CACHE=str(cache_dir))
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port),
                             "--server.headless", "true"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    url = f"http://localhost:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("streamlit did not start: " + proc.stdout.read().decode(errors="replace")[-2000:])
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_served_app_cohort_units_and_leaderboard(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright
    tmp_path = Path(os.environ.get("BGCORE_SCREENSHOTS") or tmp_path)  # set it to keep and look at the screenshots
    tmp_path.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(server, wait_until="domcontentloaded")
        expect(page.get_by_role("heading", name="Cohort")).to_be_visible(timeout=60_000)
        expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=60_000)
        assert page.locator('[data-testid="stException"]').count() == 0
        # change units in the sidebar: the page reruns and the sidebar stays
        page.get_by_text("mg/dL", exact=True).first.click()
        expect(page.locator("th", has_text="mean (mg/dL)")).to_have_count(1, timeout=30_000)  # grid header
        expect(page.get_by_text("glucose (mg/dL)").first).to_be_visible(timeout=30_000)  # plot axis
        expect(page.get_by_text("Dataset", exact=True)).to_be_visible()
        assert page.locator('[data-testid="stException"]').count() == 0
        page.screenshot(path=str(tmp_path / "cohort.png"))
        # the leaderboard page through the navigation
        page.get_by_role("link", name="Leaderboard").click()
        expect(page.get_by_role("heading", name="Leaderboard")).to_be_visible(timeout=60_000)
        expect(page.locator("th", has_text="RMSE").first).to_have_count(1, timeout=60_000)
        expect(page.get_by_text("Dataset", exact=True)).to_be_visible()
        assert page.locator('[data-testid="stException"]').count() == 0
        page.screenshot(path=str(tmp_path / "leaderboard.png"))
        for name, marker in (("Train", "Jobs"), ("Forecasts", "No stored runs")):
            page.get_by_role("link", name=name).click()
            expect(page.get_by_role("heading", name=name)).to_be_visible(timeout=60_000)
            expect(page.get_by_text(marker).first).to_be_visible(timeout=60_000)
            assert page.locator('[data-testid="stException"]').count() == 0
            page.screenshot(path=str(tmp_path / f"{name.lower()}.png"))
        # the clinician's report once reference runs exist
        from bgcore.cli import main
        assert main(["baseline"]) == 0
        page.get_by_role("link", name="Patient report").click()
        expect(page.get_by_role("heading", name="Patient report")).to_be_visible(timeout=60_000)
        expect(page.get_by_text("Best model for this patient").first).to_be_visible(timeout=60_000)
        expect(page.locator(".js-plotly-plot")).to_have_count(2, timeout=60_000)
        assert page.locator('[data-testid="stException"]').count() == 0
        page.screenshot(path=str(tmp_path / "patient.png"), full_page=True)
        with page.expect_download(timeout=60_000) as download:  # built on click (it embeds plotly.js)
            page.get_by_role("button", name="Download the report (HTML)").click()
        html = Path(download.value.path()).read_text()
        assert html.startswith("<!DOCTYPE html>") and "Best model for this patient" in html
        page.get_by_role("link", name="Forecasts").click()
        expect(page.get_by_text("Prediction trail")).to_be_visible(timeout=60_000)
        expect(page.locator(".js-plotly-plot")).to_have_count(2, timeout=60_000)
        assert page.locator('[data-testid="stException"]').count() == 0
        page.screenshot(path=str(tmp_path / "forecasts_runs.png"), full_page=True)
        page.get_by_role("link", name="Leaderboard").click()
        expect(page.get_by_text("RMSE by horizon")).to_be_visible(timeout=60_000)
        assert page.locator('[data-testid="stException"]').count() == 0
        page.screenshot(path=str(tmp_path / "leaderboard_runs.png"), full_page=True)
        # upload a file on the Import page: checked, previewed, then stored and selected
        page.get_by_role("link", name="Import").click()
        expect(page.get_by_role("heading", name="Import")).to_be_visible(timeout=60_000)
        page.locator('input[type="file"]').set_input_files(str(ROOT / "tests" / "fixtures" / "libre_us.csv"))
        expect(page.get_by_text("ready to import")).to_be_visible(timeout=60_000)
        expect(page.get_by_text("format: libre")).to_be_visible(timeout=30_000)
        page.screenshot(path=str(tmp_path / "import.png"))
        page.get_by_role("button", name="Store dataset").click()
        expect(page.get_by_text("Stored dataset 'libre_us'")).to_be_visible(timeout=60_000)
        assert page.locator('[data-testid="stException"]').count() == 0
        # a direct link to a page still runs the entry point: navigation and the shared sidebar are there
        fresh = browser.new_page()
        fresh.goto(server + "/leaderboard", wait_until="domcontentloaded")
        expect(fresh.get_by_role("heading", name="Leaderboard")).to_be_visible(timeout=60_000)
        expect(fresh.get_by_text("Glucose units")).to_be_visible(timeout=30_000)
        browser.close()
