"""Timing regressions, on ratios of saved pytest-benchmark runs (mirrors no kernel file).

Every benchmark of a checkout's bench/ suite times ptengine and the host kernel (or a floor)
in the same run and records their ratio; `--compare` runs the suite with autosave and
compares the ratios with the previous saved run of the same machine.
"""
import json
import subprocess
import sys
from pathlib import Path

DEFAULT_MARGIN = 0.25

# Ratios other benchmark files keep under their own extra_info keys (lower is better):
# key -> (label, target, goal, the keys of its two sides, their unit).
FOREIGN_RATIOS = {
    "sim_over_live": ("vs kernel (wall)", None, "workload model, no target",
                      ("wall_time_s", "live_wall_time_s"), "s"),
}


def ratios_of(extra_info):
    """{label: {"value", "target", "met", "goal", "ptengine", "reference"}} of one
    benchmark's extra_info: the suite's own extra_info["ratios"], plus FOREIGN_RATIOS."""
    out = dict(extra_info.get("ratios") or {})
    for key, (label, target, goal, sides, unit) in FOREIGN_RATIOS.items():
        value = extra_info.get(key)
        if value is None or label in out:
            continue
        sim, ref = (extra_info.get(k) for k in sides)
        out[label] = {"value": value, "target": target, "goal": goal,
                      "met": None if target is None else value <= target,
                      "ptengine": "-" if sim is None else f"{sim:.3g} {unit}",
                      "reference": "-" if ref is None else f"{ref:.3g} {unit}"}
    return out


def run_ratios(data):
    """{(benchmark fullname, ratio label): value} of one saved run, smoke runs excluded."""
    out = {}
    for b in data.get("benchmarks", []):
        info = b.get("extra_info") or {}
        if info.get("smoke"):
            continue
        for label, r in ratios_of(info).items():
            if r.get("value") is not None:
                out[(b["fullname"], label)] = r["value"]
    return out


def compare_runs(old, new, margin=DEFAULT_MARGIN):
    """(worse, better, unmatched) between two saved runs; a ratio is worse when it grew by
    more than `margin` (lower is better for all of them)."""
    a, b = run_ratios(old), run_ratios(new)
    worse, better = [], []
    for key in sorted(set(a) & set(b)):
        if a[key] > 0 and b[key] > a[key] * (1 + margin):
            worse.append((key, a[key], b[key]))
        elif b[key] > 0 and a[key] > b[key] * (1 + margin):
            better.append((key, a[key], b[key]))
    return worse, better, sorted(set(a) ^ set(b))


def _saved_runs(storage):
    """Saved runs, oldest first: pytest-benchmark numbers them per machine directory."""
    def key(p):
        head = p.name.split("_", 1)[0]
        return (int(head) if head.isdigit() else -1, p.stat().st_mtime)
    return sorted(Path(storage).glob("*/*.json"), key=key)


def compare(checkout, storage, margin=DEFAULT_MARGIN, pytest_args=(), out=print):
    """Run the benchmark suite of `checkout` with autosave into `storage`, and compare its
    ratios with the previous saved run; returns the exit status."""
    bench_dir = Path(checkout) / "bench"
    if not bench_dir.is_dir():
        out(f"no benchmark suite at {bench_dir}: --compare runs from a source checkout")
        return 2
    storage = Path(storage).resolve()
    before = set(_saved_runs(storage))
    cmd = [sys.executable, "-m", "pytest", str(bench_dir), "--benchmark-enable",
           "--benchmark-autosave", f"--benchmark-storage=file://{storage}", "-q",
           *pytest_args]
    out("running: " + " ".join(cmd))
    status = subprocess.run(cmd, cwd=checkout).returncode
    if status != 0:
        out(f"the benchmark suite failed (pytest exit {status})")
        return 1
    new = [p for p in _saved_runs(storage) if p not in before]
    if not new:
        out("pytest-benchmark saved no run; nothing to compare")
        return 2
    latest = new[-1]
    previous = [p for p in _saved_runs(storage) if p in before and p.parent == latest.parent]
    if not previous:
        out(f"saved {latest.name}; no earlier run in {latest.parent} to compare it with "
            "(the next --compare will)")
        return 0
    prev = previous[-1]
    with open(prev) as f:
        old_data = json.load(f)
    with open(latest) as f:
        new_data = json.load(f)
    worse, better, unmatched = compare_runs(old_data, new_data, margin)
    out(f"ratios of {latest.name} against {prev.name} (margin {margin:.0%}):")
    for (name, label), a, b in better:
        out(f"  better  {name} [{label}]: {a:.4g} -> {b:.4g}")
    for (name, label), a, b in worse:
        out(f"  WORSE   {name} [{label}]: {a:.4g} -> {b:.4g} ({b / a - 1:+.0%})")
    if unmatched:
        out(f"  ({len(unmatched)} ratio(s) in only one of the runs)")
    if worse:
        out(f"{len(worse)} ratio(s) worsened by more than {margin:.0%}")
        return 1
    out("no ratio worsened beyond the margin")
    return 0
