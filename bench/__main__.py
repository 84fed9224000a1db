"""Run the benchmarks and put their tables into the README.

    python -m bench all --quick        # the set in a quick mode (under 10 minutes on 2 cores)
    python -m bench all                # full mode (hours: accuracy trains every family under every goal)
    python -m bench foundation models  # some of them
    python -m bench accuracy -- --resume   # arguments after -- go to that benchmark's script
    python -m bench readme             # paste the last results into README.md

Each benchmark's printed output is stored as ``cache/bench/<name>.md`` (``<name>.quick.md`` in
quick mode) headed by the exact command, the date and the commit, and `readme` replaces the
README block between
``<!-- bench:<name> -->`` and ``<!-- /bench:<name> -->`` with it (the full result when there is
one; for the benchmarks in `BRIEF` without their progress lines), so no number in the README is
typed by hand.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# name -> (script, full-mode arguments, quick-mode arguments)
BENCHES = {
    "data": ("bench_data.py", [], ["--repeat", "1"]),
    "eval": ("bench_eval.py", [], ["--repeat", "1"]),
    "jobs": ("bench_jobs.py", [], []),
    "models": ("bench_models.py", ["--scope", "both"],
               ["--scope", "cohort", "--families", "naive,nightscout_ar2,arx,ridge,lightgbm,nbeats_mlp"]),
    "experiments": ("bench_models.py", ["--experiments"], None),
    "accuracy": ("bench_accuracy.py", [], ["--quick"]),
    "foundation": ("bench_foundation.py", [],
                   ["--patients", "adult#001,child#004,adolescent#007", "--cohort-steps", "50",
                    "--finetune-steps", "10"]),
    "dashboard": ("bench_dashboard.py", [], ["--repeat", "1"]),
    "scale": ("bench_scale.py", [], ["--sizes", "1,10,30"]),
}


# progress lines (one per family, goal or size) repeat what the tables hold: the README shows the tables only
BRIEF = {"models", "accuracy", "scale"}


def results_dir() -> Path:
    from bgcore.paths import cache_root
    folder = cache_root() / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    return (out.stdout.strip() or "unknown") + ("+changes" if dirty else "")


def run(name: str, quick: bool, extra: list[str] = ()) -> bool:
    script, full_args, quick_args = BENCHES[name]
    args = quick_args if quick else full_args
    if args is None:
        print(f"== {name}: full mode only, skipped", flush=True)
        return True
    args = [*args, *extra]
    command = ["python", f"bench/{script}", *args]
    print(f"== {name}: {' '.join(command)}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], cwd=ROOT, capture_output=True,
                          text=True)
    seconds = time.perf_counter() - t0
    print(proc.stdout[-4000:], flush=True)
    if proc.returncode not in (0, 1):  # 1: a target was missed, the table is still reported
        print(proc.stderr[-3000:], file=sys.stderr)
        return False
    header = (f"`{' '.join(command)}` ({'quick' if quick else 'full'} mode, {time.strftime('%Y-%m-%d')}, commit "
              f"{commit()}, {seconds:.0f} s)")
    # quick results never replace full ones: the README takes a full result when there is one
    (results_dir() / f"{name}{'.quick' if quick else ''}.md").write_text(header + "\n\n" + as_markdown(proc.stdout))
    return proc.returncode == 0


def as_markdown(output: str) -> str:
    """A benchmark's printed output as markdown: indented progress lines become a bullet list."""
    lines = [("- " + line.strip()) if line.startswith("  ") and line.strip() else line for line in output.splitlines()]
    return "\n".join(lines).strip() + "\n"


def readme(path: Path = ROOT / "README.md") -> int:
    """Replace each ``<!-- bench:NAME -->`` block of README.md with the stored result of NAME."""
    text = path.read_text()
    done = []
    for name in BENCHES:
        stored = results_dir() / f"{name}.md"
        if not stored.is_file():
            stored = results_dir() / f"{name}.quick.md"
        pattern = re.compile(rf"(<!-- bench:{name} -->\n).*?(<!-- /bench:{name} -->)", re.S)
        if stored.is_file() and pattern.search(text):
            body = as_markdown(stored.read_text())
            if name in BRIEF:
                body = re.sub(r"\n{3,}", "\n\n", re.sub(r"\n(- [^\n]*\n)+", "\n", body))
            text = pattern.sub(lambda m: m.group(1) + body + m.group(2), text)
            done.append(name)
    path.write_text(text)
    print(f"README.md: updated {', '.join(done) or 'nothing'}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", nargs="+", help="all, readme, or benchmark names: " + ", ".join(BENCHES))
    parser.add_argument("--quick", action="store_true", help="quick mode (under 10 minutes on 2 cores)")
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []  # passed on to one benchmark's script
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    if extra and len(args.what) != 1:
        parser.error("arguments after -- go to one benchmark: name exactly one")
    if args.what == ["readme"]:
        return readme()
    names = list(BENCHES) if args.what == ["all"] else args.what
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmarks {unknown}; choose from {', '.join(BENCHES)}")
    results = {name: run(name, args.quick, extra) for name in names}
    print("\n".join(f"{name}: {'ok' if ok else 'FAILED or target missed'}" for name, ok in results.items()))
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
