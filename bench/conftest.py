"""The benchmark suite's plumbing: sizes, the host-kernel side, ratios and their table.

    pytest bench --benchmark-enable     # full sizes, several rounds: the figures
    pytest bench                        # smoke (pyproject's addopts disable benchmarking):
                                        # every benchmark once, at reduced sizes

Every benchmark of this suite times ptengine doing some work and the host kernel doing the
same work in the same run (CONVENTIONS.md #8), or some other reference (a numpy fill of as
many u64 as the walk touches; the same operation at a smaller scale), and records the ratio
with the `bench` fixture:

    bench.ratio("vs kernel", sim_seconds, kernel_seconds, at_most=0.1, goal="...")

The ratio, its target and whether the target is met go to the benchmark's `extra_info`
(`extra_info["ratios"]`, the first one also as `extra_info["ratio"]`), which is what
`ptengine bench --compare` compares between saved runs; and every ratio of the run is
printed in one table at the end (`pytest_terminal_summary`). A missed target is printed
as missed; it does not fail the test (the figures are what the suite is for).

Times are the minimum over rounds on both sides: on a shared, noisy machine the minimum is
the least disturbed measurement of each side.
"""
import dataclasses
import time

import pytest

import ptengine
from ptengine.constants import MADV_NOHUGEPAGE, MAP_FIXED
from ptengine.bench.ratios import ratios_of

# --- sizes ------------------------------------------------------------------------------
FULL = dict(bulk=1 << 30, pairs=2000, stacks=1000, vmas_small=1000, vmas_big=1_000_000,
            pt_span=64 << 30, rounds=5, kernel_rounds=5)
SMOKE = dict(bulk=64 << 20, pairs=50, stacks=1000, vmas_small=1000, vmas_big=20_000,
             pt_span=2 << 30, rounds=1, kernel_rounds=1)

_RECORDS = pytest.StashKey[list]()


def _smoke(config):
    opt = config.getoption
    return bool(opt("benchmark_disable", False)) and not opt("benchmark_enable", False)


@pytest.fixture(scope="session")
def smoke(request):
    """True when benchmarking is disabled: each benchmark runs once at the SMOKE sizes."""
    return _smoke(request.config)


@pytest.fixture(scope="session")
def sizes(smoke):
    return dict(SMOKE if smoke else FULL)


@pytest.fixture(scope="session")
def kernel():
    """A ptengine.live LiveMM (one server process for the session), or None when the host
    cannot serve (no guard regions, no compiler): the ptengine side still runs and the
    table says the kernel figure is missing."""
    try:
        from ptengine import live
        if not live.available():
            yield None
            return
        mm = live.LiveMM()
    except Exception:                     # noqa: BLE001 - any failure means "no kernel"
        yield None
        return
    with mm:
        yield mm


# --- the same calls on both backends ----------------------------------------------------
class Pair:
    """A mapping of `size` bytes made the same way on a simulated mm and (if the host
    serves) in the live server; calls name addresses as offsets into it.

    A call is a tuple (name, offset, length, *args), e.g. ("madvise", 0, size, advice) or
    ("mmap", 0, size, prot, flags). On ptengine it is a method call; on the kernel, one
    LiveMM.batch: the syscalls run back to back in the server and are timed there.
    """

    def __init__(self, kernel, size, prot, flags):
        self.size = size
        self.prot, self.flags = prot, flags
        self.mm = ptengine.System().spawn()
        self.sim_base = self.mm.mmap(0, size, prot, flags)
        self.kernel = kernel
        self.kernel_base = kernel.mmap(0, size, prot, flags) if kernel is not None else None

    def fresh(self):
        """The calls that replace the whole mapping by a new, empty one at the same place."""
        return [("munmap", 0, self.size),
                ("mmap", 0, self.size, self.prot, self.flags | MAP_FIXED),
                ("madvise", 0, self.size, MADV_NOHUGEPAGE)]

    def on_sim(self, *calls):
        return self.sim_calls(*calls)()

    def sim_calls(self, *calls):
        """A function making the calls on ptengine, each a direct method call, as a
        program driving the simulator makes them (resolved here, before any timing)."""
        bound = [(getattr(self.mm, name), (self.sim_base + offset, *args))
                 for name, offset, *args in calls]

        def run():
            return [method(*args) for method, args in bound]
        return run

    def on_kernel(self, *calls):
        """Run the calls in the server; returns the nanoseconds they took there. A call the
        kernel refuses is an error of the benchmark, not a figure."""
        results, ns = self.kernel.batch([(name, self.kernel_base + offset, *args)
                                         for name, offset, *args in calls])
        bad = [(c[0], r) for c, r in zip(calls, results) if r < 0]
        assert not bad, f"kernel refused {bad[:3]}"
        return ns

    def close(self):
        self.mm.exit()
        if self.kernel is not None:
            self.kernel.munmap(self.kernel_base, self.size)


@pytest.fixture
def pair(kernel):
    """pair(size, prot, flags) -> Pair, closed after the test."""
    made = []

    def make(size, prot, flags):
        p = Pair(kernel, size, prot, flags)
        made.append(p)
        return p
    yield make
    for p in made:
        p.close()


# --- ratios -----------------------------------------------------------------------------
@dataclasses.dataclass
class Ratio:
    test: str                # the benchmark (test node name)
    label: str               # what is compared, e.g. "vs kernel", "vs fill", "1M / 1K"
    value: float | None      # the ratio, None when the reference is missing
    target: float | None     # the bound the ratio must not exceed, None: no target
    goal: str                # the target in words, as the issue states it
    sim: str                 # the ptengine figure, formatted
    ref: str                 # the reference figure, formatted
    note: str = ""

    @property
    def met(self):
        if self.target is None or self.value is None:
            return None
        return self.value <= self.target

    def as_info(self):
        return {"value": self.value, "target": self.target, "met": self.met,
                "goal": self.goal, "better": "lower", "ptengine": self.sim,
                "reference": self.ref, "note": self.note}


def fmt_time(seconds):
    if seconds is None:
        return "n/a"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


class Bench:
    """One benchmark's two sides and its ratios (the `bench` fixture)."""

    def __init__(self, benchmark, request, sizes, smoke):
        self.benchmark = benchmark
        self.request = request
        self.sizes = sizes
        self.smoke = smoke
        benchmark.extra_info["smoke"] = smoke

    def sim(self, fn, *, setup=None, rounds=None, per=1):
        """Time fn() on ptengine through pytest-benchmark (setup() before each round,
        untimed); returns the minimum seconds per unit of work (the round's time / per)."""
        samples = []

        def timed(*args, **kwargs):
            t0 = time.perf_counter_ns()
            out = fn(*args, **kwargs)
            samples.append(time.perf_counter_ns() - t0)
            return out

        def setup_round():            # pedantic would take a returned value for arguments
            if setup is not None:
                setup()

        self.benchmark.pedantic(timed, setup=setup_round,
                                rounds=rounds or self.sizes["rounds"], iterations=1)
        return min(samples) / 1e9 / per

    def reference(self, fn, *, rounds=None, per=1):
        """The minimum over rounds of fn(), which returns nanoseconds it measured itself
        (in the live server, or around one compiled call); seconds per unit of work."""
        return min(fn() for _ in range(rounds or self.sizes["kernel_rounds"])) / 1e9 / per

    def ratio(self, label, sim, ref, *, at_most=None, goal="", fmt=None, ref_detail="",
              note=""):
        """Record sim / ref (None if a side is missing). fmt formats the two figures
        (default: as times); ref_detail is added to the reference's text."""
        fmt = fmt or fmt_time
        value = None if ref is None or sim is None else sim / ref
        ref_text = fmt(ref) if ref is not None else "n/a"
        return self._record(Ratio(self.request.node.name, label, value, at_most, goal,
                                  fmt(sim) if sim is not None else "n/a",
                                  f"{ref_text} {ref_detail}".rstrip(), note))

    def figure(self, label, value, *, unit, at_most=None, goal="", reference="", note=""):
        """Record a figure that is not a ratio (bytes per VMA...) in the same table; the
        reference column says what it is judged against."""
        return self._record(Ratio(self.request.node.name, label, value, at_most, goal,
                                  f"{value:.4g} {unit}", reference or goal, note))

    def _record(self, r):
        info = self.benchmark.extra_info
        info.setdefault("ratios", {})[r.label] = r.as_info()
        if "ratio" not in info:
            info.update(ratio=r.value, target=r.target, met=r.met)
        return r


@pytest.fixture
def bench(benchmark, request, sizes, smoke):
    return Bench(benchmark, request, sizes, smoke)


# --- the table --------------------------------------------------------------------------
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """After each benchmark, keep the ratios in its extra_info for the table: ours
    (extra_info["ratios"]) and those other benchmark files record under their own keys
    (ptengine.bench.ratios.FOREIGN_RATIOS). Read here, they are there with benchmarking
    disabled too."""
    yield
    fixture = getattr(item, "funcargs", {}).get("benchmark")
    if fixture is None:
        return
    rows = item.config.stash.setdefault(_RECORDS, [])
    name = f"{item.path.stem.removeprefix('test_bench_')}::{item.name}"
    for label, r in ratios_of(fixture.extra_info).items():
        rows.append(Ratio(name, label, r["value"], r.get("target"), r.get("goal", ""),
                          r.get("ptengine", "-"), r.get("reference", "-"), r.get("note", "")))


def _yes_no(met):
    return {True: "yes", False: "MISSED", None: "-"}[met]


def format_table(records, smoke):
    """The summary: one line per ratio, then the missed targets."""
    head = ("benchmark", "ratio", "value", "target", "met", "ptengine", "reference")
    rows = []
    for r in records:
        value = "n/a" if r.value is None else f"{r.value:.3g}"
        target = "-" if r.target is None else f"<= {r.target:g}"
        rows.append((r.test, r.label, value, target, _yes_no(r.met), r.sim, r.ref))
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    out = [line(head), line(["-" * w for w in widths])] + [line(row) for row in rows]
    if smoke:
        out.insert(0, "SMOKE MODE (benchmarking disabled): reduced sizes, one round each; "
                      "the ratios below only show that every benchmark runs. "
                      "Run `pytest bench --benchmark-enable` for the figures.")
    missed = [r for r in records if r.met is False]
    missing = [r for r in records if r.value is None]
    out.append("")
    out.append(f"targets: {sum(r.met is True for r in records)} met, {len(missed)} missed"
               + (f", {len(missing)} without a reference" if missing else ""))
    for r in missed:
        out.append(f"  MISSED {r.test} [{r.label}]: {r.value:.3g} > {r.target:g} ({r.goal})"
                   + (f" - {r.note}" if r.note else ""))
    for r in missing:
        out.append(f"  NO REFERENCE {r.test} [{r.label}]: {r.note or 'reference not measured'}")
    return "\n".join(out)


def pytest_terminal_summary(terminalreporter, config):
    records = config.stash.get(_RECORDS, [])
    if not records:
        return
    terminalreporter.write_sep("=", "ptengine ratios (ptengine / reference; lower is better)")
    terminalreporter.write_line(format_table(records, _smoke(config)))
