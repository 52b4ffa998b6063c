"""Each model against the closed forms of workloads.md §2, on the simulator and the host.

Counts are deltas from the empty address space (the live server has mappings of its own).
"""
import math

import pytest

from ptengine import constants as C
from ptengine.profile import REFERENCE
from ptengine.workloads import GiB, MiB, run

STRATS = ("prot_none", "guard", "guard_batched")
# A distribution kernel built with CONFIG_ANON_VMA_NAME, where glibc's decorate_maps works.
NAMING = REFERENCE.with_fields(anon_vma_name=True)


def vmas(result):
    return result.delta.map_count


def calls(result, name):
    return result.syscalls["by_name"].get(name, 0)


# --- W1 glibc threads ---------------------------------------------------------------------
@pytest.mark.parametrize("strategy", STRATS)
def test_glibc_concurrent_threads(backend, strategy):
    """PN: 2N VMAs (guard + stack each, 2 write-locked calls per thread); GM: 1 merged run."""
    n = 300
    r = run("glibc_threads", strategy, {"n": n}, backend=backend)
    assert r.limit is None
    assert vmas(r) == r.expected_vmas == (2 * n if strategy == "prot_none" else 1)
    assert r.delta.maps_lines == vmas(r)
    if strategy == "prot_none":
        assert r.syscalls["write_locked"] == 2 * n and r.syscalls["read_locked"] == 0
    elif strategy == "guard":
        assert calls(r, "madvise(GUARD_INSTALL)") == n
        assert r.syscalls["write_locked"] == n and r.syscalls["read_locked"] == n
    else:      # N mmaps + ceil(N/1024) process_madvise batches
        assert r.syscalls["total"] == n + math.ceil(n / 1024)


def test_glibc_batches_are_capped_at_uio_maxiov(backend):
    r = run("glibc_threads", "guard_batched", {"n": 2500, "stack_size": 64 * 1024},
            backend=backend)
    assert calls(r, "process_madvise(GUARD_INSTALL)") == 3
    assert r.syscalls["process_madvise_iovecs"] == 2500
    assert vmas(r) == 1


@pytest.mark.host_profile("anon_vma_name", profile=NAMING)
@pytest.mark.parametrize("strategy", STRATS)
def test_glibc_decorate_maps_names_every_stack(backend, strategy):
    """glibc.mem.decorate_maps=1: per-tid names, so GM gives N VMAs instead of 1 (on a
    kernel with CONFIG_ANON_VMA_NAME)."""
    n = 50
    r = run("glibc_threads", strategy, {"n": n, "decorate_maps": True}, backend=backend,
            profile=NAMING)
    assert vmas(r) == r.expected_vmas == (2 * n if strategy == "prot_none" else n)
    assert calls(r, "set_anon_name") == n


def test_blog_1000_concurrent_threads_one_merged_vma(backend):
    """workloads.md §3 row 3: glibc 2.42+, 1000 live threads: maps +1 line, one ~7.8 GiB VMA."""
    r = run("glibc_threads", "guard", {"n": 1000}, backend=backend)
    assert r.delta.maps_lines == 1
    pn = run("glibc_threads", "prot_none", {"n": 1000}, backend=backend)
    assert pn.delta.maps_lines == 2000


@pytest.mark.parametrize("strategy", STRATS)
def test_blog_1000_serial_threads_reuse_one_stack(backend, strategy):
    """§3 row 3: 1000 serial create/join cycles reuse one cached 8 MiB stack."""
    r = run("glibc_threads", strategy, {"n": 1000, "pattern": "serial"}, backend=backend)
    assert calls(r, "mmap") == 1 and calls(r, "munmap") == 0
    assert vmas(r) == r.expected_vmas == (2 if strategy == "prot_none" else 1)
    assert calls(r, "madvise(DONTNEED)") == 1000


@pytest.mark.parametrize("strategy", ("prot_none", "guard"))
def test_glibc_stack_cache_keeps_40_mib(backend, strategy):
    """Joined stacks go to the 40 MiB cache: 4 stacks of 8 MiB + 4 KiB stay, the rest unmap."""
    r = run("glibc_threads", strategy, {"n": 20, "join": True}, backend=backend)
    assert r.extra["cached_stacks"] == 4
    assert calls(r, "munmap") == 16
    assert vmas(r) == r.expected_vmas == (8 if strategy == "prot_none" else 1)


@pytest.mark.parametrize("strategy", ("guard", "guard_batched"))
def test_glibc_falls_back_to_prot_none_for_the_whole_process(backend, strategy):
    """mlockall(MCL_FUTURE|MCL_ONFAULT): GUARD_INSTALL is EINVAL on VM_LOCKED, so 2.42
    mprotects the first guard and uses PROT_NONE guards from then on."""
    n = 40
    r = run("glibc_threads", strategy, {"n": n, "mlockall_onfault": True}, backend=backend)
    assert "glibc_fallback" in r.extra
    assert r.limit is None
    assert vmas(r) == 2 * n
    assert sum(v for k, v in r.syscalls["failed"].items() if "madvise" in k) == 1


def test_glibc_prot_none_stops_at_max_map_count(sim):
    """The limit is part of the answer: PN stacks need 2 VMAs, so 1000 VMAs hold ~500."""
    r = run("glibc_threads", "prot_none", {"n": 2000, "stack_size": 64 * 1024},
            backend=sim, max_map_count=1000)
    assert r.limit is not None
    assert r.limit.errno_name == "ENOMEM"
    assert r.limit.phase == "pthread_create" and 490 <= r.limit.index <= 500
    assert r.limit.call.startswith("mprotect(")
    assert r.limit.map_count >= 999 and r.limit.max_map_count == 1000
    gm = run("glibc_threads", "guard", {"n": 2000, "stack_size": 64 * 1024},
             backend=sim, max_map_count=1000)
    assert gm.limit is None and vmas(gm) == 1


@pytest.mark.slow
@pytest.mark.live
def test_live_glibc_prot_none_stops_near_32k_threads(live_only):
    """On the host (vm.max_map_count 65530), PROT_NONE guards stop glibc near 32K threads."""
    with open("/proc/sys/vm/max_map_count") as f:
        limit = int(f.read())
    r = run("glibc_threads", "prot_none", {"n": limit // 2 + 10, "stack_size": 64 * 1024,
                                           "touch_pages": 0}, backend=live_only)
    assert r.limit is not None and r.limit.errno_name == "ENOMEM"
    assert limit // 2 - 50 <= r.limit.index <= limit // 2


# --- W2 musl ---------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", STRATS)
def test_musl_churn(backend, strategy):
    live, cycles = 200, 400
    r = run("musl_churn", strategy, {"live": live, "cycles": cycles}, backend=backend)
    assert vmas(r) == r.expected_vmas == (2 * live if strategy == "prot_none" else 1)
    assert calls(r, "munmap") == cycles
    if strategy == "prot_none":        # 3 syscalls per thread lifetime
        assert r.syscalls["total"] == 2 * (live + cycles) + cycles


# --- W3 Android ------------------------------------------------------------------------
# The Android models run under the android profile (their registration says so); the host
# checks their figures only if it names VMAs as Android kernels do.
ANDROID_NAMES = pytest.mark.host_profile("anon_vma_name", profile="android")

@ANDROID_NAMES
@pytest.mark.parametrize("scs", ("old", "new", "none"))
def test_android_app_prot_none(backend, scs):
    """Per thread: 3 (stack_and_tls) + 2 (signal stack) + s (SCS) + 1 per Java thread, less
    one where a thread mapping lands right below another: the upper one's low guard and the
    lower one's top guard (both unnamed PROT_NONE) merge. The 2 MiB-aligned 16 MiB SCS
    reservations leave the gaps that let that happen."""
    t = 30
    p = {"threads": t, "scs": scs, "java_fraction": 0.5}
    r = run("android_app", "prot_none", p, backend=backend)
    assert r.expected_vmas == t * (5 + {"old": 3, "new": 2, "none": 0}[scs]) + t // 2
    assert r.expected_vmas - t <= vmas(r) <= r.expected_vmas


@ANDROID_NAMES
@pytest.mark.parametrize("strategy", ("guard", "guard_batched"))
def test_android_app_markers(backend, strategy):
    """With markers: <= 3 per thread (signal stacks share a name, SCS reservations are
    unnamed: neighbours of either kind merge); the per-tid stack names keep one VMA per
    thread at least."""
    t = 30
    r = run("android_app", strategy, {"threads": t, "java_fraction": 0.5}, backend=backend)
    assert r.expected_vmas == 3 * t
    assert t < vmas(r) <= 3 * t


@pytest.mark.parametrize("profile, failed", [(None, 0), ("reference", 2 * 10)])
def test_android_models_run_under_the_android_profile(sim, profile, failed):
    """The simulator runs W3 under its own profile, where both names of every thread
    (stack_and_tls, signal stack) are set; under the reference profile (no
    CONFIG_ANON_VMA_NAME) each of them is EINVAL."""
    r = run("android_app", "guard", {"threads": 10}, backend=sim, profile=profile)
    assert r.profile == (profile or "android")
    assert r.syscalls["failed"].get("set_anon_name: EINVAL", 0) == failed
    assert calls(r, "set_anon_name") == 2 * 10


def test_android_background_is_real_mappings(backend):
    r = run("android_app", "prot_none", {"threads": 0, "background": 101}, backend=backend)
    assert vmas(r) == 101


@ANDROID_NAMES
def test_android_device_reproduces_13_percent(backend):
    """§3 row 1: ~13% fewer VMAs on an idle device (B=1800, T=60, V_PN=8, Δ=5)."""
    p = {"processes": 3}
    pn = run("android_device", "prot_none", p, backend=backend)
    gm = run("android_device", "guard", p, backend=backend)
    assert pn.delta.processes == 3
    assert pn.expected_vmas == 3 * (1800 + 60 * 8)
    assert pn.expected_vmas - 3 * 60 <= vmas(pn) <= pn.expected_vmas
    reduction = (vmas(pn) - vmas(gm)) / vmas(pn)
    assert 0.125 <= reduction <= 0.16


# --- W4 JVM ----------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", STRATS)
@pytest.mark.parametrize("java,native", [(100, 0), (0, 50), (100, 20)])
def test_jvm(backend, strategy, java, native):
    p = {"java_threads": java, "native_threads": native}
    r = run("jvm", strategy, p, backend=backend)
    assert vmas(r) == r.expected_vmas
    if strategy == "prot_none":
        assert vmas(r) == 2 * java + 2 * native
    else:
        assert vmas(r) == 1


@pytest.mark.parametrize("strategy", ("guard", "guard_batched"))
def test_jvm_glibc_242_does_not_help_java_threads(backend, strategy):
    """Java threads ask glibc for guard 0; HotSpot's mprotected zone still splits."""
    r = run("jvm", strategy, {"java_threads": 100, "native_threads": 0,
                              "hotspot_markers": False}, backend=backend)
    assert vmas(r) == 200
    r = run("jvm", strategy, {"java_threads": 0, "native_threads": 30,
                              "hotspot_markers": False}, backend=backend)
    assert vmas(r) == 1


@pytest.mark.parametrize("strategy", ("prot_none", "guard"))
def test_jvm_overflow_events_rearm(backend, strategy):
    r = run("jvm", strategy, {"java_threads": 50, "native_threads": 5, "overflows": 20},
            backend=backend)
    assert vmas(r) == r.expected_vmas
    disarm = "mprotect" if strategy == "prot_none" else "madvise(GUARD_REMOVE)"
    assert calls(r, disarm) >= 20


# --- W5 large allocations ----------------------------------------------------------------
def test_large_alloc_guards(backend):
    """[G][data][G]: a run of k adjacent blocks is 2k+1 PN VMAs and 1 GM VMA, so PN = 2K +
    runs and GM = runs whatever the placement (THP-aligned 2 MiB multiples break runs)."""
    k = 200
    pn = run("large_alloc", "prot_none", {"blocks": k}, backend=backend)
    gm = run("large_alloc", "guard", {"blocks": k}, backend=backend)
    gb = run("large_alloc", "guard_batched", {"blocks": k}, backend=backend)
    runs = vmas(gm)
    assert 1 <= runs <= 3 and vmas(gb) == runs
    assert vmas(pn) == 2 * k + runs
    assert calls(gb, "process_madvise(GUARD_INSTALL)") == k
    assert gb.syscalls["process_madvise_iovecs"] == 2 * k


@pytest.mark.parametrize("strategy", STRATS)
def test_large_alloc_churn_runs_cleanly(backend, strategy):
    r = run("large_alloc", strategy, {"blocks": 100, "churn": 200}, backend=backend)
    assert r.limit is None
    assert calls(r, "munmap") == 200
    if strategy == "prot_none":
        assert vmas(r) >= 2 * 100 + 1


# --- W6 region guards and GWP-ASan ----------------------------------------------------------
@pytest.mark.parametrize("strategy", STRATS)
def test_region_guards(backend, strategy):
    g = 1500
    r = run("region_guards", strategy, {"guards": g}, backend=backend)
    assert vmas(r) == r.expected_vmas == (2 * g + 1 if strategy == "prot_none" else 1)
    if strategy == "guard_batched":
        assert r.syscalls["total"] == 1 + math.ceil(g / 1024)
    if strategy != "prot_none":     # a PTE table for each 2 MiB that holds a marker
        spread = g * ((256 * MiB // g) & ~(C.PAGE_SIZE - 1))
        assert r.delta.vm_pte_kb * 1024 >= (spread // (2 * MiB)) * C.PAGE_SIZE


@pytest.mark.parametrize("strategy", STRATS)
def test_gwp_asan(backend, strategy):
    r = run("gwp_asan", strategy, {"events": 500}, backend=backend)
    assert vmas(r) == r.expected_vmas == (2 * 8 + 1 if strategy == "prot_none" else 1)
    if strategy == "prot_none":      # 2 write-locked calls per sampled allocation (bar the first 8)
        assert r.syscalls["write_locked"] == 1 + 500 + (500 - 8)
    else:
        assert r.syscalls["write_locked"] == 1


# --- W7 fibers: ClickHouse/ClickHouse#109734 (§3 row 4) ------------------------------------
@pytest.mark.parametrize("strategy", STRATS)
def test_clickhouse_300_live_fiber_stacks(backend, strategy):
    r = run("fiber_pool", strategy, {"fibers": 300}, backend=backend)
    assert vmas(r) == (600 if strategy == "prot_none" else 1)


def test_clickhouse_bursts_peak_and_serial(backend):
    pn = run("fiber_pool", "prot_none", {"pattern": "bursts"}, backend=backend)
    assert 128 <= pn.peak_map_count <= 130 and vmas(pn) == 0      # "peak ≈ +130"
    gm = run("fiber_pool", "guard", {"pattern": "bursts"}, backend=backend)
    assert gm.peak_map_count <= 1 and vmas(gm) == 0
    for s in STRATS:                                                # "500 cycles → 0"
        r = run("fiber_pool", s, {"pattern": "serial"}, backend=backend)
        assert vmas(r) == 0 and r.peak_map_count <= 2


# --- W8 wasm --------------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", STRATS)
def test_wasm_reservations(backend, strategy):
    w, committed = 3, 64 * MiB
    r = run("wasm", strategy, {"memories": w, "committed": committed, "grow_steps": 2},
            backend=backend)
    assert vmas(r) == r.expected_vmas == (2 * w if strategy == "prot_none" else 1)
    pte = r.delta.vm_pte_kb * 1024
    if strategy == "prot_none":
        assert pte < 1 * MiB
    else:     # ≈ (8 GiB - c) / 2 MiB PTE tables per memory: ~16 MiB each
        assert pte >= w * ((8 * GiB - committed) // (2 * MiB)) * C.PAGE_SIZE
