"""Host profiles: each field changes what the simulator does as it changes the kernel, the
host's own profile predicts what its kernel does, and without a host kernel (Linux < 6.13,
not Linux, or PTENGINE_LIVE=0) the suite passes with the live halves skipped.

Per field, one scenario returns what a user sees (an errno, a VmFlag, an si_code, an
address...) and one function says what that is for a given value of the field. The
simulator is checked under both values; the host kernel under its own, read by
ptengine.live.host_profile() — which checks host_profile() and the simulator in one go.
"""
import dataclasses
import os
import re
import subprocess
import sys

import pytest

import ptengine
from ptengine import live
from ptengine.constants import (BUS_ADRERR, BUS_MCEERR_AR, MADV_GUARD_INSTALL, MADV_HUGEPAGE,
                                MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PAGE_SIZE, PM_SOFT_DIRTY,
                                PMD_SIZE, PROT_READ, PROT_WRITE)
from ptengine.errors import Fault
from ptengine.profile import ANDROID, PROFILES, REFERENCE, HostProfile, get

P = PAGE_SIZE
RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def vmflags(mm, addr):
    """The VmFlags mnemonics smaps shows for the VMA holding addr."""
    text, start = mm.smaps(), None
    for line in text.splitlines():
        m = re.match(r"([0-9a-f]+)-([0-9a-f]+) ", line)
        if m:
            start = int(m.group(1), 16) <= addr < int(m.group(2), 16)
        elif start and line.startswith("VmFlags:"):
            return line.split()[1:]
    raise AssertionError(f"no VMA at {addr:#x}")


def smaps_kb(mm, addr, key):
    text, inside = mm.smaps(), False
    for line in text.splitlines():
        m = re.match(r"([0-9a-f]+)-([0-9a-f]+) ", line)
        if m:
            inside = int(m.group(1), 16) <= addr < int(m.group(2), 16)
        elif inside and line.startswith(key + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {key} for {addr:#x}")


def outcome(call, *args):
    """0 for success (the simulator returns None where the kernel returns 0), else errno."""
    try:
        call(*args)
        return 0
    except OSError as e:
        return e.errno


# --- one scenario per field: (what a process sees, what the field's value predicts) -----
def anon_name(system, mm, profile):
    p = mm.mmap(0, 2 * P, RW, ANON)
    return outcome(mm.set_anon_name, p, P, "profile-test")


def poison_code(system, mm, profile):
    p = mm.mmap(0, P, RW, ANON)
    mm.install_poison(p, P)
    with pytest.raises(Fault) as e:
        mm.read(p, 1)
    return e.value.code


def guard_flag(system, mm, profile):
    p = mm.mmap(0, 2 * P, RW, ANON)
    mm.madvise(p, P, MADV_GUARD_INSTALL)
    return "gu" in vmflags(mm, p)


def soft_dirty(system, mm, profile):
    p = mm.mmap(0, P, RW, ANON)
    mm.touch(p, P, write=True)
    return "sd" in vmflags(mm, p), bool(int(mm.pagemap(p, P)[0]) & PM_SOFT_DIRTY)


def hint_floor(system, mm, profile):
    """A hint below every mmap_min_addr is raised to the floor (round_hint_to_min())."""
    return mm.mmap(P, P, PROT_READ, ANON)


def thp_fault(system, mm, profile):
    """kB of AnonHugePages after one touch in a 2 MiB-aligned run, without and with
    MADV_HUGEPAGE."""
    out = []
    for advise in (False, True):
        p = mm.mmap(0, 2 * PMD_SIZE, RW, ANON)
        huge = (p + PMD_SIZE - 1) & ~(PMD_SIZE - 1)
        if advise:
            mm.madvise(p, 2 * PMD_SIZE, MADV_HUGEPAGE)
        mm.touch(huge, 1, write=True)
        out.append(smaps_kb(mm, huge, "AnonHugePages"))
    return tuple(out)


def overcommit(system, mm, profile):
    """One private writable mapping just above RAM, and one above RAM + swap: the
    heuristic refuses what exceeds RAM + swap; ALWAYS refuses nothing."""
    ram = profile.totalram_pages * P
    above_all = ram + profile.total_swap_pages * P + PMD_SIZE
    return tuple(outcome(lambda n: mm.munmap(mm.mmap(0, n, RW, ANON), n), n)
                 for n in (ram + PMD_SIZE, above_all))


def file_dev(system, mm, profile):
    f = system.create_file("profile.bin", P)
    p = mm.mmap(0, P, PROT_READ, MAP_SHARED, f)
    line = next(ln for ln in mm.maps().splitlines() if ln.startswith(f"{p:x}-"))
    major, minor = line.split()[3].split(":")
    return int(major, 16), int(minor, 16)


def _overcommit_expected(value, profile):
    enomem = 0 if value == 1 else 12
    return (0 if value == 1 or profile.total_swap_pages * P > PMD_SIZE else 12, enomem)


SCENARIOS = {
    "anon_vma_name": (anon_name, lambda v, _: 0 if v else 22),
    "memory_failure": (poison_code, lambda v, _: BUS_MCEERR_AR if v else BUS_ADRERR),
    "maybe_guard": (guard_flag, lambda v, _: v),
    "soft_dirty": (soft_dirty, lambda v, _: (v, v)),
    "mmap_min_addr": (hint_floor, lambda v, _: v),
    "thp_enabled": (thp_fault, lambda v, _: {"always": (2048, 2048), "madvise": (0, 2048),
                                             "never": (0, 0)}[v]),
    "overcommit_memory": (overcommit, _overcommit_expected),
    "root_dev": (file_dev, lambda v, _: v),
}
OTHER_VALUE = {"anon_vma_name": True, "memory_failure": True, "maybe_guard": False,
               "soft_dirty": True, "mmap_min_addr": 0x8000, "thp_enabled": "always",
               "overcommit_memory": 1, "root_dev": (0xFD, 0x03)}


@pytest.mark.parametrize("field", sorted(SCENARIOS))
@pytest.mark.parametrize("value", ["reference", "other"])
def test_simulator_follows_the_profile(field, value):
    profile = REFERENCE if value == "reference" else \
        REFERENCE.with_fields(**{field: OTHER_VALUE[field]})
    scenario, expected = SCENARIOS[field]
    system = ptengine.System(profile=profile)
    mm = system.spawn()
    assert scenario(system, mm, profile) == expected(getattr(profile, field), profile)
    mm.check()


def test_thp_never_and_swap_of_the_android_profile():
    """THP `never` takes even MADV_HUGEPAGE ranges away; android's zram swap lets one
    request beyond RAM (but within RAM + swap) through the overcommit heuristic."""
    never = ptengine.System(thp_enabled="never")
    assert thp_fault(never, never.spawn(), never.profile) == (0, 0)
    system = ptengine.System(profile="android")
    assert overcommit(system, system.spawn(), system.profile) == (0, 12)


@pytest.fixture(scope="module")
def host():
    if not live.available():
        pytest.skip("ptengine.live is not available (no host kernel with guard regions)")
    return live.host_profile()


# Fields whose live scenario the host can run as it is: a THP fault may fall back to small
# pages when no huge page is free, and regular files of a LiveSystem live in the temporary
# directory, which need not be on the root file system.
LIVE_FIELDS = sorted(set(SCENARIOS) - {"thp_enabled", "root_dev"})


@pytest.mark.live
@pytest.mark.parametrize("field", LIVE_FIELDS)
def test_host_profile_predicts_the_kernel_and_the_simulator(host, field):
    """What the host kernel does is what host_profile() predicts, and the simulator under
    that profile does the same."""
    scenario, expected = SCENARIOS[field]
    want = expected(getattr(host, field), host)
    with live.LiveSystem() as system:
        assert scenario(system, system.spawn(), host) == want
    system = ptengine.System(profile=host)
    assert scenario(system, system.spawn(), host) == want


@pytest.mark.live
def test_host_profile_reads_the_files(host):
    """The fields read from /proc and /sys, read here independently."""
    with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
        assert f"[{host.thp_enabled}]" in f.read()
    with open("/proc/sys/vm/max_map_count") as f:
        assert host.max_map_count == int(f.read())
    st = os.stat("/")
    assert host.root_dev == (os.major(st.st_dev), os.minor(st.st_dev))
    assert host.name == "host" and host.memtotal_kb > 0


@pytest.mark.live
def test_reference_is_what_this_machine_kind_has(host):
    """On a reference machine every field matches (RAM to the boot's reservations); on
    another host, the fields that differ are named, and only they."""
    diffs = REFERENCE.differences(host)
    reasons = live.unchecked(REFERENCE)
    assert len(reasons) == len(diffs)
    for (field, wanted, got), reason in zip(diffs, reasons):
        assert field in reason and wanted != got


def test_profiles_are_frozen_named_and_checked():
    assert set(PROFILES) >= {"reference", "android"}
    assert get(None) is REFERENCE and get("android") is ANDROID and get(ANDROID) is ANDROID
    with pytest.raises(ValueError):
        get("solaris")
    with pytest.raises(TypeError):
        get(3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        REFERENCE.anon_vma_name = True
    with pytest.raises(TypeError):
        REFERENCE.with_fields(anon_vma_name=1)
    with pytest.raises(ValueError):
        REFERENCE.with_fields(thp_enabled="sometimes")
    with pytest.raises(TypeError):
        REFERENCE.with_fields(page_size=16384)
    assert REFERENCE.with_fields(anon_vma_name=False) is REFERENCE
    named = REFERENCE.with_fields(anon_vma_name=True, max_map_count=1000)
    assert named.name == "reference (anon_vma_name=True, max_map_count=1000)"
    assert [d[0] for d in named.differences(REFERENCE)] == ["max_map_count", "anon_vma_name"]
    booted = REFERENCE.with_fields(memtotal_kb=REFERENCE.memtotal_kb - 420)
    assert booted.differences(REFERENCE) == []
    assert [d[0] for d in ANDROID.differences(REFERENCE, ("memtotal_kb", "swap_kb"))] == \
        ["memtotal_kb", "swap_kb"]
    assert isinstance(ANDROID, HostProfile) and ANDROID.anon_vma_name


def test_system_takes_a_profile_and_settings():
    assert ptengine.System().profile is REFERENCE
    assert ptengine.MM().system.profile is REFERENCE
    system = ptengine.System(profile="android", max_map_count=1000)
    assert system.profile.name == "android (max_map_count=1000)"
    assert system.max_map_count == 1000 and system.spawn().max_map_count == 1000
    assert system.spawn().mmap_min_addr == ANDROID.mmap_min_addr
    with pytest.raises(TypeError):
        ptengine.System(no_such_setting=1)
    with pytest.raises(ValueError, match="strict accounting"):
        ptengine.System(overcommit_memory=2)


def test_without_a_host_kernel_the_suite_passes_with_live_halves_skipped():
    """PTENGINE_LIVE=0 turns the live backend off, as a kernel without guard regions (or a
    system that is not Linux) would: a representative subset of the suite, run in a
    subprocess, passes, every live half skipped and every simulator half run."""
    subset = ["tests/conformance/test_guard_madvise.py", "tests/address_space/test_merge.py",
              "tests/rules/test_d_faults.py", "tests/workloads/test_models.py",
              "tests/test_profile.py::test_simulator_follows_the_profile",
              "tests/test_profile.py::test_host_profile_reads_the_files"]
    env = dict(os.environ, PTENGINE_LIVE="0", PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider",
                           "-m", "not slow", *subset], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    results = re.findall(r"^(\S+::\S+) (PASSED|SKIPPED|FAILED|ERROR|XFAIL|XPASS)",
                         proc.stdout, re.M)
    assert results
    live_ids = [(t, r) for t, r in results if re.search(r"\[(.*-)?(kernel|live)(-.*)?\]", t)
                or "host_profile" in t]
    sim_ids = [(t, r) for t, r in results if (t, r) not in live_ids]
    assert live_ids and all(r == "SKIPPED" for _, r in live_ids), live_ids
    assert sim_ids and all(r in ("PASSED", "XFAIL", "SKIPPED") for _, r in sim_ids)
    passed = [t for t, r in sim_ids if r == "PASSED"]
    assert len(passed) > len(sim_ids) // 2, "the simulator halves must run, not skip"
    probe = subprocess.run([sys.executable, "-c", "from ptengine import live; "
                            "assert not live.available(); live.host_profile()"],
                           cwd=ROOT, env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "RuntimeError" in probe.stderr, probe.stderr
    assert "PTENGINE_LIVE=0" in probe.stderr
