"""Sweeps over files: strace logs (`traces`, replayed) and maps snapshots (`snapshots`,
under whatif). Each row's figures are what the functions `ptengine replay` and
`ptengine whatif` call give for that file alone; a bad file or strategy is a SpecError
naming the line, before anything runs."""
import functools
import importlib.util
import pathlib

import pandas as pd
import pytest

from ptengine import sweep
from ptengine.sweep import kinds
from ptengine.trace import maps, strace
from ptengine.trace import whatif as W
from ptengine.trace.replay import replay
from ptengine.workloads import table

TESTS = pathlib.Path(__file__).resolve().parents[1]
DATA = TESTS.parent / "data" / "android"


def _trace_module(name):
    """A module of tests/trace (not a package importable from here): its log and listing
    helpers."""
    spec = importlib.util.spec_from_file_location(f"_sweep_{name}", TESTS / "trace" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REWRITE = _trace_module("test_rewrite")      # a log with stack, reservation, guard idioms
WHATIF = _trace_module("test_whatif")        # `listing`: maps text from rows


@pytest.fixture
def files(tmp_path):
    """A log (with its start listing), and a synthetic maps file: a glibc thread stack
    with its guard page below, and an arena reservation."""
    (tmp_path / "prog.strace").write_text("".join(REWRITE._log()))
    (tmp_path / "start.maps").write_text(REWRITE.START)
    P, MiB = W.PAGE_SIZE, 1 << 20
    (tmp_path / "threads.maps").write_text(WHATIF.listing([
        (0x7f0000000000, P, "---p", ""), (None, 8 * MiB, "rw-p", ""),
        (None, P, "---p", ""), (None, 8 * MiB, "rw-p", ""),
        (0x7f1000000000, 132 * 1024, "rw-p", ""), (None, 64 * MiB - 132 * 1024, "---p", ""),
        (0x7ffffffde000, 0x21000, "rw-p", "[stack]")]))
    return tmp_path


def spec_text(d):
    return f"""\
[[grid]]
traces = ["{d}/prog.strace"]
start_maps = "{d}/start.maps"
faults = ["first-write", "none"]

[[grid]]
snapshots = ["{d}/threads.maps", "{DATA}/*.gz"]
convert_reservations = [false, true]
max_map_count = [65530, 1000]
"""


def same(a, b):
    return (pd.isna(a) and pd.isna(b)) if (a is None or b is None or pd.isna(a)) else a == b


def replay_alone(row):
    with open(row["source"]) as f:
        calls, _ = strace.parse(f)
    rewrite = None if row["strategy"] == "prot_none" else row["strategy"]
    result = replay(calls, start_maps=maps.read(row["start_maps"]), faults=row["faults"],
                    rewrite=rewrite)
    return {m.column: m.get(result) for m in table.TRACE_METRICS}, result


@functools.lru_cache(maxsize=None)
def whatif_alone(source, reservations, max_map_count):
    """whatif's report, as `ptengine whatif [--reservations] --max-map-count N` makes it."""
    return W.whatif(W.load_file(source, None, max_map_count), reservations=reservations)


def test_traces_and_snapshots_on_a_local_cluster(files):
    jobs = sweep.plan(spec_text(files))
    # 1 log × 2 fault modes × 3 strategies; 3 listings × 2 × 2 max_map_counts × 2 sides.
    assert len(jobs) == 6 + 3 * 2 * 2 * 2
    df = sweep.run(spec_text(files))
    assert len(df) == len(jobs) and df["error"].isna().all(), df["error"].dropna().tolist()
    assert list(df["kind"].unique()) == ["trace", "snapshot"]

    traces = df[df["kind"] == "trace"]
    for _, row in traces.iterrows():
        want, result = replay_alone(row)
        for column, value in want.items():
            assert same(row[column], value), (row["strategy"], row["faults"], column)
        assert row["calls"] == result.calls and row["mismatches"] == 0
    # Markers fold each idiom into one VMA: fewer VMAs than as recorded, same log.
    recorded = traces[traces["strategy"] == "prot_none"]["vmas"].iloc[0]
    assert (traces[traces["strategy"] != "prot_none"]["vmas"] < recorded).all()
    assert (traces["host_profile"] == "reference (anon_vma_name=True)").all()

    snaps = df[df["kind"] == "snapshot"]
    assert set(snaps["strategy"]) == {"prot_none", "guard"}     # now, markers
    for _, row in snaps.iterrows():
        report = whatif_alone(row["source"], bool(row["convert_reservations"]),
                              int(row["max_map_count"]))
        side = "now" if row["strategy"] == "prot_none" else "markers"
        assert row["vmas"] == report[f"vmas_{side}"]
        assert row["vm_pte_bytes"] == report[f"pte_bytes_{side}"]
        assert row["headroom"] == report[f"headroom_{side}"] == row["max_map_count"] - row["vmas"]
        for column in ("guards", "reservations", "unclassified", "conversion_failures"):
            assert row[column] == report[column], (row["source"], column)
    # The Android listings name anonymous memory: rebuilt with CONFIG_ANON_VMA_NAME.
    android = snaps["source"].str.endswith(".gz")
    assert (snaps[android]["host_profile"] == "reference (anon_vma_name=True)").all()
    assert (snaps[~android]["host_profile"] == "reference").all()
    synthetic = snaps[~android & (snaps["max_map_count"] == 65530)
                      & ~snaps["convert_reservations"].astype(bool)]
    assert list(synthetic["guards"]) == [2, 2] and list(synthetic["reservations"]) == [1, 1]


@pytest.mark.parametrize("grid, key, message", [
    ('traces = ["{d}/missing.strace"]', "traces", "no such file"),
    ('traces = ["{d}/*.nothing"]', "traces", "no file matches"),
    ('traces = ["{d}/threads.maps"]', "traces", "not a system call line"),
    ('traces = ["{d}/prog.strace"]\nstart_maps = "{d}/nope.maps"', "start_maps", "cannot read"),
    ('traces = ["{d}/prog.strace"]\nfaults = ["sometimes"]', "faults", "wants one of"),
    ('traces = ["{d}/prog.strace"]\nstrategies = ["prot_none", "markers"]', "strategies",
     "unknown strategy 'markers'"),
    ('traces = []', "traces", "empty list"),
    ('snapshots = ["{d}/prog.strace"]', "snapshots", "not a maps line"),
    ('snapshots = ["{d}/threads.maps"]\nstrategies = ["guard_batched"]', "strategies",
     "snapshots grids run prot_none (now), guard (markers), not 'guard_batched'"),
    ('snapshots = ["{d}/threads.maps"]\nreservations = true', "reservations",
     "unknown parameter 'reservations'"),
    ('snapshots = ["{d}/threads.maps"]\nconvert_reservations = 1', "convert_reservations",
     "wants true or false"),
])
def test_bad_file_grids_are_refused_naming_the_line(files, grid, key, message):
    text = "max_map_count = 65530\n\n[[grid]]\n" + grid.format(d=files) + "\n"
    with pytest.raises(sweep.SpecError) as e:
        sweep.plan(text)
    line = next(i for i, l in enumerate(text.splitlines(), 1) if l.startswith(key))
    assert e.value.line == line and message in e.value.message, str(e.value)


def test_default_strategies_are_narrowed_to_what_a_kind_runs(files):
    jobs = sweep.plan(f'[[grid]]\nsnapshots = "{files}/threads.maps"\n')
    assert [j["strategy"] for j in jobs] == ["prot_none", "guard"]
    assert kinds.host_profile(jobs[0]) == "reference"
