"""Dashboard responsiveness against a real server in headless Chromium, with a trivial page as the yardstick.

    python bench/bench_dashboard.py            # 3 loads per page (median), prints the table
    python bench/bench_dashboard.py --repeat 5 --json

Starts two Streamlit servers: a trivial one-chart page and the dashboard (on a fresh cache
with the stored reference runs, so every page has content), then in Debian Chromium
(Playwright) times, per page, a fresh load until the page's main content is drawn and the
script has finished; the switch from one page to the next through the navigation; and a
leaderboard filter change (patient group) until the table is redrawn. Targets (issue 7):
each page loads within 1.5x of the trivial page; a page switch and a filter change take
under 1 s. Writes ``cache/bench/dashboard.csv``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

from _common import markdown_table  # noqa: E402

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]
TRIVIAL = '''import plotly.graph_objects as go
import streamlit as st
st.title("Trivial")
st.plotly_chart(go.Figure(go.Scatter(x=[1, 2, 3], y=[1, 3, 2])))
'''
# page path, nav label, heading, what marks the page as drawn
PAGES = [("", "Cohort", "Cohort", ".js-plotly-plot"),
         ("import_data", "Import", "Import", "text=Choose a file"),
         ("train", "Train", "Train", "text=Jobs"),
         ("forecasts", "Forecasts", "Forecasts", ".js-plotly-plot"),
         ("leaderboard", "Leaderboard", "Leaderboard", ".js-plotly-plot"),
         ("patient", "Patient report", "Patient report", ".js-plotly-plot")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(script: Path, env: dict) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(port),
                             "--server.headless", "true", "--browser.gatherUsageStats", "false"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"http://localhost:{port}"
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"streamlit did not start for {script}")


def settled(page, marker: str, timeout_ms: int = 60_000) -> None:
    """Wait until `marker` is visible and the script run has finished (no running indicator)."""
    page.locator(marker).first.wait_for(state="visible", timeout=timeout_ms)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
                           timeout=timeout_ms)


def load_time(browser, url: str, marker: str) -> float:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    t0 = time.perf_counter()
    page.goto(url, wait_until="commit")
    settled(page, marker)
    seconds = time.perf_counter() - t0
    context.close()
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("Debian chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bgbench-"))
    env = dict(os.environ, BGCORE_CACHE=str(work / "cache"))
    subprocess.run([sys.executable, "-m", "bgcore", "baseline"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    (work / "trivial.py").write_text(TRIVIAL)
    servers = [serve(work / "trivial.py", env), serve(ROOT / "app.py", env)]
    (_, trivial_url), (_, app_url) = servers
    rows = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=ARGS, headless=True)
            load_time(browser, trivial_url, ".js-plotly-plot")  # warm both servers (imports, caches)
            for path, _, _, marker in PAGES:
                load_time(browser, f"{app_url}/{path}", marker)
            baseline = statistics.median(load_time(browser, trivial_url, ".js-plotly-plot")
                                         for _ in range(args.repeat))
            rows.append({"what": "trivial one-chart page (yardstick)", "seconds": baseline, "target_s": None})
            for path, label, _, marker in PAGES:
                seconds = statistics.median(load_time(browser, f"{app_url}/{path}", marker)
                                            for _ in range(args.repeat))
                rows.append({"what": f"load {label}", "seconds": seconds, "target_s": 1.5 * baseline})
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            page.goto(app_url, wait_until="commit")
            settled(page, PAGES[0][3])
            switches: dict[str, list] = {}
            for _ in range(args.repeat):  # round the navigation: each page reached from the one before it
                for path, label, heading, marker in PAGES[1:] + PAGES[:1]:
                    t0 = time.perf_counter()
                    page.get_by_role("link", name=label).click()
                    page.get_by_role("heading", name=heading).wait_for(timeout=60_000)
                    settled(page, marker)
                    switches.setdefault(label, []).append(time.perf_counter() - t0)
            for label, times in switches.items():
                rows.append({"what": f"switch to {label}", "seconds": statistics.median(times), "target_s": 1.0})
            page.get_by_role("link", name="Leaderboard").click()
            settled(page, ".js-plotly-plot")
            times = []
            for group in ("child", "adult", "all") * args.repeat:
                t0 = time.perf_counter()
                page.get_by_label("Patient group").click()
                page.get_by_role("option", name=group, exact=True).click()
                page.get_by_text(f"mean over {group} patients").wait_for(timeout=60_000)
                settled(page, ".js-plotly-plot")
                times.append(time.perf_counter() - t0)
            rows.append({"what": "leaderboard filter (patient group)", "seconds": statistics.median(times),
                         "target_s": 1.0})
            browser.close()
    finally:
        for proc, _ in servers:
            proc.terminate()
        shutil.rmtree(work, ignore_errors=True)
    for r in rows:
        r["seconds"] = round(r["seconds"], 2)
        r["target_s"] = None if r["target_s"] is None else round(r["target_s"], 2)
        r["ok"] = None if r["target_s"] is None else r["seconds"] <= r["target_s"]
    from bgcore.paths import cache_root
    out = cache_root() / "bench"
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(out / "dashboard.csv", index=False)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"Dashboard in headless Chromium ({os.cpu_count()} CPUs, median of {args.repeat})\n")
        print(markdown_table(pd.DataFrame(rows).fillna("")))
    return 0 if all(r["ok"] is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
