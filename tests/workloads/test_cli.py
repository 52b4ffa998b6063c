"""`ptengine compare`: the table, the JSON document, the plot, errors — at tiny sizes."""
import json

import pytest

from ptengine import cli
from ptengine.workloads import runner


@pytest.fixture
def compare(monkeypatch, capsys, availability):
    """Run `ptengine compare ...` and return (status, stdout). The CLI is tested on the
    simulator; before the simulator is in the tree, its runs go to the live kernel."""
    if not availability.sim:
        if not availability.live:
            pytest.skip("neither the simulator nor ptengine.live is available")
        real = runner.open_backend
        monkeypatch.setattr(runner, "open_backend",
                            lambda *args, **kwargs: real("live"))

    def invoke(*argv):
        status = cli.main(["compare", "--no-progress", *argv])
        return status, capsys.readouterr().out
    return invoke


def test_table_has_strategies_side_by_side(compare):
    status, out = compare("W7", "--param", "fibers=20")
    assert status == 0
    assert "fiber_pool (W7)  fibers=20" in out
    header = next(line for line in out.splitlines() if "prot_none" in line)
    assert header.index("prot_none") < header.index("guard ") < header.index("guard_batched")
    row = next(line for line in out.splitlines() if "VMAs (map_count" in line)
    assert row.split()[3:5] == ["40", "1"] and "(-97.5%)" in row
    assert "mmap_lock write" in out and "VmPTE" in out
    assert "time, per call (model + calls)" in out and "time, one batch (executor loop)" in out


def test_json_schema(compare, tmp_path):
    path = tmp_path / "out.json"
    status, out = compare("glibc_threads", "musl_churn", "--param", "n=10", "--param",
                          "musl_churn.live=5", "--param", "cycles=3", "--strategies",
                          "prot_none,guard", "--json", str(path))
    assert status == 0
    doc = json.loads(path.read_text())
    assert doc["schema"] == "ptengine.compare/1" and doc["vma_struct_bytes"] == 192
    assert doc["live"] is False
    runs = doc["runs"]
    assert [(r["workload"], r["strategy"]) for r in runs] == [
        ("glibc_threads", "prot_none"), ("glibc_threads", "guard"),
        ("musl_churn", "prot_none"), ("musl_churn", "guard")]
    r = runs[0]
    assert r["scale"] == 10 and r["params"]["n"] == 10 and r["expected_vmas"] == 20
    assert r["delta"]["map_count"] == 20 and r["delta"]["vma_bytes"] == 20 * 192
    assert set(r["delta"]) >= {"map_count", "maps_lines", "vm_pte_bytes", "vma_bytes"}
    assert set(r["syscalls"]) >= {"total", "write_locked", "read_locked", "by_name"}
    assert r["syscalls"]["by_name"] == {"mmap": 10, "mprotect": 10}
    assert runs[1]["syscalls"]["by_name"] == {"mmap": 10, "madvise(GUARD_INSTALL)": 10}
    assert r["limit"] is None and r["live"] is None and r["mismatch"] == []
    assert r["wall_time_s"] >= 0 and r["batch_time_s"] > 0 and r["batch_note"] is None
    assert runs[2]["params"]["live"] == 5 and runs[2]["params"]["cycles"] == 3


@pytest.mark.parametrize("suffix", ["png", "svg"])
def test_plot_written(compare, tmp_path, suffix):
    path = tmp_path / f"plot.{suffix}"
    status, out = compare("W6", "--scale", "10,20", "--plot", str(path))
    assert status == 0 and path.stat().st_size > 1000
    assert out.count("== region_guards") == 2


def test_limit_is_reported(compare, availability):
    if not availability.sim:
        pytest.skip("--max-map-count needs the simulator")
    status, out = compare("W1", "--param", "n=600", "--param", "stack_size=64K",
                          "--max-map-count", "1000", "-s", "prot_none", "guard")
    assert status == 0
    assert "LIMIT prot_none: ENOMEM at pthread_create #" in out
    assert "mprotect(" in out and "max_map_count 1000" in out


def test_bad_input(compare, capsys):
    assert cli.main(["compare", "nosuch"]) == 2
    assert "unknown workload" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["compare", "W1", "--param", "nosuch=1"])
    assert cli.main(["compare", "W1", "--strategies", "mprotect"]) == 2


def test_list_and_help(capsys):
    assert cli.main(["compare", "--list"]) == 0
    out = capsys.readouterr().out
    for name in ("glibc_threads", "musl_churn", "android_app", "android_device", "jvm",
                 "large_alloc", "region_guards", "gwp_asan", "fiber_pool", "wasm"):
        assert name in out
    assert cli.main([]) == 2


def test_each_model_is_summed_up_by_its_docstring():
    """The summary is the first line the model's author wrote (a compiled module must not
    put its signature there)."""
    from ptengine.workloads import WORKLOADS
    for w in WORKLOADS.values():
        assert w.summary and "(run)" not in w.summary, (w.name, w.summary)
        assert w.summary.split()[0] in (w.alias, w.alias.rstrip("d"), "GWP-ASan"), w.summary


def test_live_side_by_side(compare, availability):
    if not (availability.sim and availability.live):
        pytest.skip("--live compares the simulator with the host kernel: needs both")
    status, out = compare("W7", "--param", "fibers=10", "--live")
    assert status == 0
    assert "live: VMAs Δ" in out


def test_live_says_what_the_host_cannot_check(compare, availability, tmp_path):
    """W3 runs under the android profile. Where the host differs from it in what the
    model's figures depend on (CONFIG_ANON_VMA_NAME here), --live shows the model's own
    table, names the difference, and compares the host with the simulator under the host's
    profile; no run disagrees."""
    if not (availability.sim and availability.live):
        pytest.skip("--live compares the simulator with the host kernel: needs both")
    from ptengine import live
    from ptengine.workloads import get
    wl = get("W3")
    path = tmp_path / "w3.json"
    status, out = compare("W3", "--param", "threads=10", "--strategies", "prot_none,guard",
                          "--live", "--json", str(path))
    assert status == 0 and "MISMATCH" not in out
    reasons = live.unchecked(wl.host_profile, wl.profile_fields)
    assert out.count("== android_app (W3)") == (2 if reasons else 1)
    assert ("cannot check" in out) == bool(reasons)
    assert all(r in out for r in reasons)
    runs = json.loads(path.read_text())["runs"]
    profiles = [r["profile"] for r in runs]
    assert profiles[:2] == ["android", "android"]
    assert profiles[2:] == (["host", "host"] if reasons else [])
    assert all(r["live"] is None for r in runs[:2]) == bool(reasons)
