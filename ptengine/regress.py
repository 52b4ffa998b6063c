"""Regression tracking: `ptengine bench --check | --update | --compare`.

Two kinds of regression are tracked, each the way it can be judged on a noisy machine:

* Deterministic figures, kept in a committed baseline (bench/baseline.json):
  - the VMA count, VmPTE, RSS and guard pages left by a fixed set of scenarios, with the
    syscalls each made and the errors they got (`SCENARIOS`);
  - the same for every workload model of `ptengine.workloads` under every strategy, at its
    suite size with the scale parameter capped at `WORKLOAD_SCALE` (when the workload
    registry imports);
  - the instructions the compiled walkers execute on a fixed input, counted by valgrind's
    callgrind on a small driver (when valgrind is installed). Instruction counts depend on
    the compiler and Cython, so the baseline records the toolchain and counts made with
    another toolchain are reported, not compared.
  `--check` recomputes them and exits 1 on any difference from the baseline, printing each
  one; `--update` writes the baseline afresh (sections that cannot be computed here are
  kept as they were).

* Timing, judged on ratios (ptengine / kernel, / floor, 1M / 1K), never on absolute times:
  `--compare` runs the benchmark suite (`pytest bench --benchmark-enable`) with
  pytest-benchmark's autosave and exits 1 when a ratio is worse than in the previous saved
  run by more than `--margin` (25% by default).

Exit status: 0 ok, 1 a regression (or difference), 2 the check could not run.
"""
import argparse
import collections
import dataclasses
import errno
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from . import constants as C

REPO = Path(__file__).resolve().parent.parent
DEFAULT_BASELINE = REPO / "bench" / "baseline.json"
DEFAULT_STORAGE = REPO / ".benchmarks"
FORMAT = 1
WORKLOAD_SCALE = 50            # cap on each model's scale parameter for the figures
DEFAULT_MARGIN = 0.25
MiB = 1 << 20
RW = C.PROT_READ | C.PROT_WRITE
ANON = C.MAP_PRIVATE | C.MAP_ANONYMOUS


class Unavailable(Exception):
    """A section of figures cannot be computed on this machine (and why)."""


# ---------------------------------------------------------------------------------------
# Scenarios: fixed call sequences on the simulator
# ---------------------------------------------------------------------------------------
class _Counted:
    """An MM whose syscall-shaped calls are counted (and their errors, by errno name)."""

    CALLS = frozenset({"mmap", "munmap", "mprotect", "madvise", "process_madvise", "mremap",
                       "mlock", "munlock", "mlockall", "munlockall", "mseal", "brk",
                       "set_anon_name", "install_poison", "fork"})

    def __init__(self, mm, calls=None, errors=None):
        self.mm = mm
        self.calls = calls if calls is not None else collections.Counter()
        self.errors = errors if errors is not None else collections.Counter()

    def __getattr__(self, name):
        attr = getattr(self.mm, name)
        if name not in self.CALLS:
            return attr

        def call(*args, **kwargs):
            self.calls[name] += 1
            try:
                out = attr(*args, **kwargs)
            except OSError as e:
                self.errors[f"{name}: {errno.errorcode.get(e.errno, e.errno)}"] += 1
                raise
            return _Counted(out, self.calls, self.errors) if name == "fork" else out
        return call


SCENARIOS = {}


def scenario(func):
    """Register func(mm) -> {label: mm} (the processes whose state is the figures)."""
    SCENARIOS[func.__name__] = func
    return func


def _stacks(mm, n, guard):
    """n glibc-style 8 MiB thread stacks with a 4 KiB guard, top page touched."""
    size = 8 * MiB + C.PAGE_SIZE
    for _ in range(n):
        if guard:
            a = mm.mmap(0, size, RW, ANON | C.MAP_STACK)
            mm.madvise(a, C.PAGE_SIZE, C.MADV_GUARD_INSTALL)
        else:
            a = mm.mmap(0, size, C.PROT_NONE, ANON | C.MAP_STACK)
            mm.mprotect(a + C.PAGE_SIZE, size - C.PAGE_SIZE, RW)
        mm.touch(a + size - C.PAGE_SIZE, write=True)
    return {"mm": mm}


@scenario
def glibc_stacks_prot_none(mm):
    return _stacks(mm, 200, guard=False)


@scenario
def glibc_stacks_guard(mm):
    return _stacks(mm, 200, guard=True)


@scenario
def populated_guards(mm):
    """256 MiB populated, a guard every 64 KiB (zap and retry), then MADV_DONTNEED of all:
    the markers stay, and so do their tables."""
    size = 256 * MiB
    a = mm.mmap(0, size, RW, ANON)
    mm.madvise(a, size, C.MADV_POPULATE_WRITE)
    for off in range(0, size, 64 << 10):
        mm.madvise(a + off, C.PAGE_SIZE, C.MADV_GUARD_INSTALL)
    mm.madvise(a, size, C.MADV_DONTNEED)
    return {"mm": mm}


@scenario
def fork_cow(mm):
    """64 MiB populated with a guard every MiB; fork; the child writes the first half (COW
    copies), the parent drops the second half."""
    size = 64 * MiB
    a = mm.mmap(0, size, RW, ANON)
    mm.touch(a, size, write=True)
    for off in range(0, size, MiB):
        mm.madvise(a + off, C.PAGE_SIZE, C.MADV_GUARD_INSTALL)
    child = mm.fork()
    for off in range(C.PAGE_SIZE, size // 2, C.PAGE_SIZE):
        if off % MiB:
            child.write(a + off, b"x")
    mm.madvise(a + size // 2, size // 2, C.MADV_DONTNEED)
    return {"parent": mm, "child": child}


@scenario
def mprotect_checkerboard(mm):
    """4 MiB with every other page made read-only (1024 splits), then half restored."""
    size = 4 * MiB
    a = mm.mmap(0, size, RW, ANON)
    for off in range(0, size, 2 * C.PAGE_SIZE):
        mm.mprotect(a + off, C.PAGE_SIZE, C.PROT_READ)
    mm.mprotect(a, size // 2, RW)
    return {"mm": mm}


@scenario
def munmap_holes(mm):
    """64 MiB populated, every other 2 MiB unmapped: tables freed with their ranges."""
    size = 64 * MiB
    a = mm.mmap(0, size, RW, ANON)
    mm.madvise(a, size, C.MADV_POPULATE_WRITE)
    for off in range(0, size, 4 * MiB):
        mm.munmap(a + off, 2 * MiB)
    return {"mm": mm}


@scenario
def mremap_guarded(mm):
    """16 MiB populated with a guard every MiB, grown to 32 MiB by a move: the markers
    move with the pages."""
    size = 16 * MiB
    a = mm.mmap(0, size, RW, ANON)
    mm.touch(a, size, write=True)
    for off in range(0, size, MiB):
        mm.madvise(a + off, C.PAGE_SIZE, C.MADV_GUARD_INSTALL)
    mm.mmap(a + size, C.PAGE_SIZE, C.PROT_READ, ANON | C.MAP_FIXED)   # blocks growing
    mm.mremap(a, size, 2 * size, C.MREMAP_MAYMOVE)
    return {"mm": mm}


@scenario
def locked_guards(mm):
    """mlock over a guard region fails (ENOMEM) with the VMA still locked; guard install
    on a locked VMA fails (EINVAL); guard remove on it works."""
    size = MiB
    a = mm.mmap(0, size, RW, ANON)
    mm.madvise(a + C.PAGE_SIZE, C.PAGE_SIZE, C.MADV_GUARD_INSTALL)
    for call, args in (("mlock", (a, size)),
                       ("madvise", (a + 2 * C.PAGE_SIZE, C.PAGE_SIZE, C.MADV_GUARD_INSTALL)),
                       ("madvise", (a + C.PAGE_SIZE, C.PAGE_SIZE, C.MADV_GUARD_REMOVE))):
        try:
            getattr(mm, call)(*args)
        except OSError:
            pass
    return {"mm": mm}


def _guard_pages(mm):
    total = 0
    for v in mm.vmas():
        for start, end, _ in mm.pagemap_scan(v.start, v.end, category_mask=C.PAGE_IS_GUARD,
                                             return_mask=C.PAGE_IS_GUARD):
            total += (end - start) // C.PAGE_SIZE
    return total


def footprint(mm):
    """What /proc shows for one process, in kB as status() gives it."""
    s = mm.status()
    out = {k: int(s[k]) for k in ("VmSize", "VmRSS", "RssAnon", "VmPTE", "VmLck")}
    out["map_count"] = mm.map_count
    out["guard_pages"] = _guard_pages(mm)
    return out


def scenario_figures(names=None):
    import ptengine
    figures = {}
    for name, func in SCENARIOS.items():
        if names is not None and name not in names:
            continue
        mm = _Counted(ptengine.System().spawn())
        processes = func(mm)
        fig = {label: footprint(p) for label, p in processes.items()}
        fig["syscalls"] = dict(sorted(mm.calls.items()))
        fig["errors"] = dict(sorted(mm.errors.items()))
        figures[name] = fig
        for p in processes.values():
            p.exit()
    return figures


# ---------------------------------------------------------------------------------------
# Workload models
# ---------------------------------------------------------------------------------------
def workload_figures():
    try:
        from .workloads import STRATEGIES, WORKLOADS, run
    except Exception as e:                       # noqa: BLE001 - any import failure
        raise Unavailable(f"ptengine.workloads does not import: {e!r}") from None
    figures = {}
    for name, wl in sorted(WORKLOADS.items()):
        params = wl.params(small=True)
        if isinstance(params.get(wl.scale), int):
            params[wl.scale] = min(params[wl.scale], WORKLOAD_SCALE)
        per = {}
        for strategy in STRATEGIES:
            r = run(name, strategy.value, params)
            delta = r.delta.as_dict()
            per[strategy.value] = {
                "map_count": delta["map_count"], "maps_lines": delta["maps_lines"],
                "vm_pte_bytes": delta["vm_pte_bytes"], "processes": delta["processes"],
                "peak_map_count": r.peak_map_count, "expected_vmas": r.expected_vmas,
                "syscalls": r.syscalls, "limit": r.limit.describe() if r.limit else None,
            }
        figures[name] = {"params": _jsonable(params), "strategies": per}
    return figures


def _jsonable(d):
    return {k: v if isinstance(v, (int, float, str, bool, type(None))) else repr(v)
            for k, v in d.items()}


# ---------------------------------------------------------------------------------------
# Instruction counts of the compiled walkers (callgrind)
# ---------------------------------------------------------------------------------------
WALK_BYTES = 64 * MiB
# The driver calls each walker once, on a fixed range, through PageTables' Python methods;
# callgrind collects only inside those methods (--toggle-collect), and each one's inclusive
# count is its figure.
# The driver loads the compiled core without the package's Python modules (only errors and
# constants, which the core imports), so that changes to those leave the allocator's state,
# and with it the counts, as they were.
DRIVER = f"""
import sys, types
import numpy as np
package = types.ModuleType("ptengine")
package.__path__ = ["r/ptengine"]
sys.modules["ptengine"] = package
from ptengine import _core
A, S = 0x7f0000000000, {WALK_BYTES}
frames = _core.Frames()
pt = _core.PageTables(frames)
child = _core.PageTables(frames)
pt.install_guards(A, A + S)                           # fresh range: tables allocated
pt.remove_guards(A, A + S)
pt.fault_anon(A, A + S, True, 0x8000000000000067)     # first-touch write faults
pt.change_prot(A, A + S, 0, 0x2)                      # write-protect every PTE
pt.copy_range(child, A, A + S, 1)                     # fork: COW copy
pt.pagemap(A, A + S, np.zeros(S // 4096, dtype=np.uint64))
pt.zap(A, A + S, 0)                                   # populated zap
"""
WALKERS = ("install_guards", "remove_guards", "fault_anon", "change_prot", "copy_range",
           "pagemap", "zap")
_WRAPPER = "__pyx_pw_8ptengine_5_core_10PageTables_"
_LINE = re.compile(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?\S*?:" + re.escape(_WRAPPER)
                   + r"\d+([A-Za-z_]\w*?)(?:'\d+)?(?:\s|$)")


def toolchain():
    """What instruction counts depend on besides the source."""
    try:
        import Cython
        cython = Cython.__version__
    except ImportError:
        cython = None
    return {"python": platform.python_version(), "machine": platform.machine(),
            "cython": cython, "cc": _first_line([_cc(), "--version"]),
            "valgrind": _first_line(["valgrind", "--version"])}


def _cc():
    import sysconfig
    return (sysconfig.get_config_var("CC") or "cc").split()[0]


def _first_line(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.splitlines()[0].strip() if out.strip() else None


def parse_callgrind_annotate(text):
    """{walker: instructions} from `callgrind_annotate --inclusive=yes` output: the
    inclusive count of each PageTables method wrapper, fragments (inlined header code
    reported under another file) summed."""
    counts = collections.Counter()
    for line in text.splitlines():
        m = _LINE.match(line)
        if m:
            counts[m.group(2)] += int(m.group(1).replace(",", ""))
    return dict(counts)


def instruction_counts():
    valgrind, annotate = shutil.which("valgrind"), shutil.which("callgrind_annotate")
    if not valgrind or not annotate:
        raise Unavailable("valgrind (with callgrind_annotate) is not installed: instruction "
                          "counts not computed")
    with tempfile.TemporaryDirectory(prefix="ptengine-callgrind-") as tmp:
        driver, out = Path(tmp, "driver.py"), Path(tmp, "callgrind.out")
        driver.write_text(DRIVER)
        # A fixed environment: what the interpreter allocates at start-up (os.environ,
        # sys.path) shifts the allocator's state, and with it the walkers' counts. So the
        # checkout is reached through a link of fixed name, whatever folder it lives in.
        Path(tmp, "r").symlink_to(REPO, target_is_directory=True)
        # Bytecode caches go to a fresh folder too: a cache written under another path
        # holds that path's file names, which the import machinery then fixes up.
        env = {"PYTHONHASHSEED": "0", "PYTHONPATH": "r", "PATH": os.defpath,
               "LC_ALL": "C", "PYTHONPYCACHEPREFIX": "pyc"}
        # Once without valgrind first, so that the bytecode caches are written and the
        # counted run never compiles (compiling would also shift the allocator's state).
        subprocess.run([sys.executable, str(driver)], env=env, cwd=tmp, capture_output=True)
        cmd = [valgrind, "--tool=callgrind", f"--callgrind-out-file={out}",
               "--collect-atstart=no", f"--toggle-collect={_WRAPPER}*",
               sys.executable, str(driver)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp)
        if proc.returncode != 0:
            raise RuntimeError(f"callgrind driver failed ({proc.returncode}):\n"
                               f"{proc.stderr[-3000:]}")
        text = subprocess.run([annotate, "--inclusive=yes", "--auto=no", "--threshold=100",
                               str(out)], capture_output=True, text=True, check=True).stdout
    counts = parse_callgrind_annotate(text)
    missing = [w for w in WALKERS if w not in counts]
    if missing:
        raise RuntimeError(f"callgrind reported no count for {missing}")
    return {"toolchain": toolchain(), "bytes_walked": WALK_BYTES,
            "counts": {w: counts[w] for w in WALKERS}}


# ---------------------------------------------------------------------------------------
# Baseline: compute, diff, check, update
# ---------------------------------------------------------------------------------------
SECTIONS = {"scenarios": scenario_figures, "workloads": workload_figures,
            "instructions": instruction_counts}


def compute(sections=None, log=print):
    """The figures of this tree: {section: figures}, and the notes on sections skipped."""
    figures, notes = {}, []
    for name, func in SECTIONS.items():
        if sections is not None and name not in sections:
            continue
        log(f"computing {name} ...")
        try:
            figures[name] = func()
        except Unavailable as e:
            notes.append(f"{name}: skipped - {e}")
    return figures, notes


def flatten(tree, prefix=""):
    """{"a.b.c": leaf} for a nested dict (lists and scalars are leaves)."""
    out = {}
    for key, value in tree.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            out.update(flatten(value, path))
        else:
            out[path] = value
    return out


@dataclasses.dataclass
class Change:
    path: str
    old: object
    new: object
    MISSING = object()

    def describe(self):
        if self.old is Change.MISSING:
            return f"  + {self.path} = {self.new!r}   (new: not in the baseline)"
        if self.new is Change.MISSING:
            return f"  - {self.path} = {self.old!r}   (in the baseline, gone now)"
        text = f"  {self.path}: {self.old!r} -> {self.new!r}"
        if _number(self.old) and _number(self.new):
            d = self.new - self.old
            text += f"  ({d:+,}" + (f", {d / self.old:+.2%})" if self.old else ")")
        return text


def _number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def diff(old, new):
    """Every difference between two figure trees, in path order."""
    a, b = flatten(old), flatten(new)
    changes = []
    for path in sorted(set(a) | set(b)):
        va, vb = a.get(path, Change.MISSING), b.get(path, Change.MISSING)
        if va != vb and not (va is Change.MISSING and vb is Change.MISSING):
            changes.append(Change(path, va, vb))
    return changes


def load_baseline(path):
    with open(path) as f:
        data = json.load(f)
    if data.get("format") != FORMAT:
        raise ValueError(f"{path}: baseline format {data.get('format')!r}, expected {FORMAT}")
    return data


def write_baseline(path, figures):
    data = {"format": FORMAT,
            "about": "Deterministic figures of ptengine (ptengine/regress.py). Recompute "
                     "with `ptengine bench --check`; rewrite with `ptengine bench --update`.",
            "figures": figures}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")


def check(baseline_path, *, compute_fn=compute, out=print):
    """Recompute and compare; returns the exit status."""
    try:
        baseline = load_baseline(baseline_path)["figures"]
    except FileNotFoundError:
        out(f"no baseline at {baseline_path}; create it with `ptengine bench --update`")
        return 2
    current, notes = compute_fn(sections=None, log=lambda msg: None)
    changes = []
    for section, figures in current.items():
        old = baseline.get(section)
        if old is None:
            notes.append(f"{section}: not in the baseline (run --update to add it)")
            changes.append(Change(section, Change.MISSING, "<new section>"))
            continue
        if section == "instructions" and old.get("toolchain") != figures.get("toolchain"):
            notes.append("instructions: the baseline was counted with another toolchain "
                         f"({old.get('toolchain')}; here: {figures.get('toolchain')}) - "
                         "not compared; run --update where the baseline is kept")
            continue
        changes += [dataclasses.replace(c, path=f"{section}.{c.path}")
                    for c in diff(old, figures)]
    for note in notes:
        out(f"note: {note}")
    if not changes:
        out(f"ptengine bench --check: figures match {baseline_path} "
            f"({', '.join(current) or 'nothing computed'})")
        return 0
    out(f"ptengine bench --check: {len(changes)} difference(s) from {baseline_path}:")
    for c in changes:
        out(c.describe())
    out("If these changes are intended, run `ptengine bench --update` and commit the "
        "baseline with them.")
    return 1


def update(baseline_path, *, compute_fn=compute, out=print):
    current, notes = compute_fn(sections=None, log=out)
    try:
        kept = load_baseline(baseline_path)["figures"]
    except FileNotFoundError:
        kept = {}
    for section in SECTIONS:
        if section not in current and section in kept:
            current[section] = kept[section]
            notes.append(f"{section}: kept from the old baseline")
    for note in notes:
        out(f"note: {note}")
    changes = diff(kept, current)
    write_baseline(baseline_path, current)
    out(f"wrote {baseline_path} ({len(changes)} figure(s) changed)")
    for c in changes[:200]:
        out(c.describe())
    return 0


# ---------------------------------------------------------------------------------------
# Timing: ratios of saved pytest-benchmark runs
# ---------------------------------------------------------------------------------------
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


def compare(margin=DEFAULT_MARGIN, storage=DEFAULT_STORAGE, pytest_args=(), out=print):
    bench_dir = REPO / "bench"
    if not bench_dir.is_dir():
        out(f"no benchmark suite at {bench_dir}: --compare runs from a source checkout")
        return 2
    storage = Path(storage).resolve()
    before = set(_saved_runs(storage))
    cmd = [sys.executable, "-m", "pytest", str(bench_dir), "--benchmark-enable",
           "--benchmark-autosave", f"--benchmark-storage=file://{storage}", "-q",
           *pytest_args]
    out("running: " + " ".join(cmd))
    status = subprocess.run(cmd, cwd=REPO).returncode
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


# ---------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------
def add_bench_arguments(p):
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="recompute the deterministic figures and fail on any difference "
                           "from the baseline (the default)")
    mode.add_argument("--update", action="store_true",
                      help="rewrite the baseline with the figures of this tree")
    mode.add_argument("--compare", action="store_true",
                      help="run the benchmark suite (autosaved) and fail when a ratio "
                           "worsened by more than --margin against the last saved run")
    p.add_argument("--baseline", default=str(DEFAULT_BASELINE), metavar="FILE",
                   help="the baseline file (default: bench/baseline.json)")
    p.add_argument("--margin", type=float, default=DEFAULT_MARGIN, metavar="FRACTION",
                   help="--compare: how much a ratio may worsen (default 0.25 = 25%%)")
    p.add_argument("--storage", default=str(DEFAULT_STORAGE), metavar="DIR",
                   help="--compare: pytest-benchmark's storage (default: .benchmarks)")
    p.add_argument("pytest_args", nargs="*", metavar="PYTEST_ARG",
                   help="--compare: extra pytest arguments (after --), e.g. -- -k walkers")


def run_bench(args):
    """Run the subcommand parsed by add_bench_arguments(); returns the exit status."""
    if args.pytest_args and not args.compare:
        print("ptengine bench: pytest arguments (after --) are only for --compare",
              file=sys.stderr)
        return 2
    if args.update:
        return update(args.baseline)
    if args.compare:
        return compare(args.margin, args.storage, args.pytest_args)
    return check(args.baseline)


def bench_main(argv=None):
    """`ptengine bench [--check | --update | --compare]`; returns the exit status.
    (The ptengine CLI can equally register add_bench_arguments and run_bench as its
    `bench` subcommand.)"""
    p = argparse.ArgumentParser(prog="ptengine bench", description=__doc__.split("\n\n")[0])
    add_bench_arguments(p)
    return run_bench(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(bench_main())
