"""A SPEC is checked whole before anything runs; each error names the SPEC's line."""
import pytest

from ptengine import cli, sweep
from ptengine.sweep import execute
from ptengine.workloads import get

GOOD = """\
strategies = ["prot_none", "guard"]

[[grid]]
workloads = ["glibc_threads"]
n = [1, 10]

[[grid]]
workloads = ["fiber_pool", "region_guards"]
scale = { log_range = [2, 8], factor = 2 }
touch_pages = [0, 1]
"""


@pytest.fixture(autouse=True)
def nothing_runs(monkeypatch):
    """Any attempt to run a job (or start a cluster) fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("a job ran although the SPEC is bad")
    monkeypatch.setattr(execute, "run_jobs", refuse)


def line_of(text, needle, occurrence=1):
    """The 1-based line of the `occurrence`-th line containing `needle`."""
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    return hits[occurrence - 1]


def test_good_spec_expands_to_every_cell():
    jobs = sweep.plan(GOOD)
    glibc = [j for j in jobs if j["workload"] == "glibc_threads"]
    assert [(j["n"], j["strategy"]) for j in glibc] == [
        (1, "prot_none"), (1, "guard"), (10, "prot_none"), (10, "guard")]
    fibers = sorted({(j["fibers"], j["touch_pages"]) for j in jobs
                     if j["workload"] == "fiber_pool"})
    assert fibers == [(f, t) for f in (2, 4, 8) for t in (0, 1)]
    assert len(jobs) == 4 + 2 * (3 * 2 * 2)
    # Every parameter of the model is in the job, with the model's defaults filled in.
    assert set(get("glibc_threads").defaults) <= set(glibc[0])
    assert glibc[0]["stack_size"] == get("glibc_threads").defaults["stack_size"]
    assert len({j["cell_id"] for j in jobs}) == 2 + 12
    # The SPEC forms agree: text, dict and path give the same jobs.
    import tomllib
    assert sweep.plan(tomllib.loads(GOOD)) == jobs


def test_example_is_a_good_spec(tmp_path, capsys):
    assert cli.main(["sweep", "--example"]) == 0
    text = capsys.readouterr().out
    assert text == sweep.EXAMPLE
    path = tmp_path / "example.toml"
    path.write_text(text)
    jobs = sweep.plan(path)
    assert {j["workload"] for j in jobs} >= {"glibc_threads", "fiber_pool", "wasm"}
    assert max(j["n"] for j in jobs if j["workload"] == "glibc_threads") == 100_000


@pytest.mark.parametrize("bad, needle, words", [
    ('workloads = ["glibc_threads", "nosuch"]', "nosuch", "unknown workload 'nosuch'"),
    ('nn = [1, 2]', "nn =", "unknown parameter 'nn'"),
    ('n = ["many"]', '"many"', "n: wants an integer"),
    ('decorate_maps = 1', "decorate_maps", "decorate_maps: wants true or false"),
    ('n = []', "n = []", "n: empty list"),
    ('n = { log_range = [100, 10] }', "log_range", "log_range wants 1 <= lo <= hi"),
    ('strategies = ["mprotect"]', "mprotect", "unknown strategy 'mprotect'"),
    ('repetitions = 0', "repetitions", "repetitions: wants positive integers"),
    ('traces = ["x.strace"]', "traces", "no such file"),
])
def test_bad_grid_entry_names_its_line(bad, needle, words, tmp_path, capsys):
    text = GOOD.replace('n = [1, 10]', bad) if not bad.startswith(("workloads", "traces")) \
        else GOOD.replace('workloads = ["glibc_threads"]', bad)
    with pytest.raises(sweep.SpecError) as e:
        sweep.run(text)
    assert words in str(e.value)
    assert e.value.line == line_of(text, needle)
    assert str(e.value).startswith(f"SPEC:{e.value.line}: grid 1: ")
    # The command line says the same, with the file's name, and exits 2.
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert cli.main(["sweep", str(path), "-o", str(tmp_path / "out.parquet")]) == 2
    err = capsys.readouterr().err
    assert f"bad.toml:{e.value.line}: grid 1: " in err and words in err
    assert not (tmp_path / "out.parquet").exists()


@pytest.mark.parametrize("text, line, words", [
    ("strategies = ['guard']\n", None, "empty grid: the SPEC has no [[grid]]"),
    ("[[grid]]\nworkloads = []\n", 2, "grid 1: workloads: empty list"),
    ("[[grid]]\nn = [1]\n", 1, "grid 1: names nothing to run"),
    ("[[grid]]\nworkloads = ['W1']\n[[grid]]\nworkloads = 'W7'\nfibers = 'x'\n", 5,
     "grid 2: fibers: wants an integer"),
    ("[[grid]]\nworkloads = ['W1'\n", 2, "not valid TOML"),
    ("[[grid]]\nworkloads = 'W1'\nn = = 1\nstack_size = 1\n", 3, "not valid TOML"),
    ("max_map_count = 'lots'\n[[grid]]\nworkloads = ['W1']\n", 1, "max_map_count: wants"),
    ("colour = 1\n[[grid]]\nworkloads = ['W1']\n", 1, "unknown top-level key 'colour'"),
])
def test_bad_spec_shapes(text, line, words):
    with pytest.raises(sweep.SpecError) as e:
        sweep.run(text)
    assert words in str(e.value)
    assert e.value.line == line


def test_ranges():
    jobs = sweep.plan("[[grid]]\nworkloads = 'W1'\nstrategies = 'guard'\n"
                      "n = { log_range = [1, 1000] }\n"
                      "stack_size = { log_range = ['64KiB', '256KiB'], factor = 2 }\n"
                      "guard_size = { range = [4096, 12288, 4096] }\n")
    assert sorted({j["n"] for j in jobs}) == [1, 10, 100, 1000]
    assert sorted({j["stack_size"] for j in jobs}) == [64 << 10, 128 << 10, 256 << 10]
    assert sorted({j["guard_size"] for j in jobs}) == [4096, 8192, 12288]
    assert len(jobs) == 4 * 3 * 3


def test_spec_path_or_text():
    with pytest.raises(FileNotFoundError):
        sweep.plan("no/such/spec.toml")
    with pytest.raises(TypeError):
        sweep.plan(42)
