"""Backend-neutral fixtures for the guard-regions conformance scenarios.

Every scenario runs on two backends with the same API:
  "kernel"   - ptengine.live: the host kernel, through a live server process;
  "ptengine" - the simulator: ptengine.System().spawn().
and, like tools/testing/selftests/mm/guard-regions.c, on the backings it supports:
  "anon"  - MAP_PRIVATE | MAP_ANONYMOUS (the offset is forced to 0);
  "shmem" - a 100-page memfd, MAP_SHARED;
  "file"  - a 100-page regular file, MAP_SHARED.
A scenario names its backings with @pytest.mark.variants(...); the default is all three.
"""
import os
import re
import signal
from dataclasses import dataclass

import pytest

import ptengine
from ptengine.constants import (MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PAGE_SIZE,
                                SEGV_MAPERR)
from ptengine.errors import Fault, SegmentationFault

P = PAGE_SIZE
BACKENDS = ("kernel", "ptengine")
VARIANTS = ("anon", "shmem", "file")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "variants(*names): backings (anon, shmem, file) a guard-regions scenario "
                   "runs on; all three if absent")


def pytest_generate_tests(metafunc):
    if "variant" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("variants")
        metafunc.parametrize("variant", marker.args if marker else VARIANTS)


@dataclass
class Env:
    backend: str
    system: object
    mm: object


@pytest.fixture(params=BACKENDS)
def env(request):
    """(backend, system, mm): a fresh system and one empty process on that backend."""
    if request.param == "kernel":
        from ptengine import live
        if not live.available():
            live.server_binary()          # a build failure is an error, not a skip
            pytest.skip("the host kernel has no guard regions (MADV_GUARD_INSTALL)")
        system = live.LiveSystem()
        try:
            yield Env("kernel", system, system.spawn())
        finally:
            system.close()
    else:
        if not hasattr(ptengine, "System"):
            pytest.skip("simulator not importable yet")
        system = ptengine.System()
        yield Env("ptengine", system, system.spawn())


class GuardTest:
    """The selftest's fixture: one backend, one backing, its file, and its helpers."""

    def __init__(self, env, variant):
        self.backend, self.system, self.mm = env.backend, env.system, env.mm
        self.variant = variant
        self.file = None
        if variant == "shmem":
            self.file = self.system.memfd_create("guard_regions_test_file", 0)
        elif variant == "file":
            self.file = self.system.create_file("guard_regions_test_file", 0)
        if self.file is not None:
            self.file.truncate(100 * P)

    # --- mappings ---------------------------------------------------------------------

    def mmap_(self, addr, npages, prot, extra_flags=0, off=0):
        """mmap npages with the variant's flags and file; off is in bytes (0 for anon)."""
        if self.variant == "anon":
            return self.mm.mmap(addr, npages * P, prot,
                                extra_flags | MAP_PRIVATE | MAP_ANONYMOUS, None, 0)
        return self.mm.mmap(addr, npages * P, prot, extra_flags | MAP_SHARED, self.file, off)

    def madvise(self, addr, npages, advice):
        return ok(self.mm.madvise(addr, npages * P, advice))

    # --- user-mode access, as the selftest's try_*_buf ---------------------------------

    def try_read(self, addr):
        """A one-byte read: True if no signal. Only SIGSEGV is an expected failure (the
        selftest handles nothing else, so any other signal fails the scenario)."""
        sig = self.mm.access(addr)
        assert sig in (None, signal.SIGSEGV), f"read at {addr:#x} raised {sig!r}"
        return sig is None

    def try_write(self, addr):
        """Write 'x' to the byte: True if no signal."""
        try:
            self.mm.write(addr, b"x")
        except SegmentationFault:
            return False
        return True

    def try_rw(self, addr):
        return self.try_read(addr) and self.try_write(addr)

    def byte(self, addr):
        return self.mm.read(addr, 1)

    # --- patterns (set_pattern / check_pattern_offset) ---------------------------------

    def set_pattern(self, ptr, npages):
        self.mm.write(ptr, pattern(0, npages))

    def check_pattern(self, ptr, npages, pgoff=0):
        return self.mm.read(ptr + pgoff * P, npages * P) == pattern(pgoff, npages)

    # --- /proc --------------------------------------------------------------------------

    def vmflags(self, addr):
        """The smaps VmFlags mnemonics of the VMA holding addr."""
        return smaps_vmflags(self.mm.smaps(), addr)

    def vmas_in(self, start, end):
        return [v for v in self.mm.vmas() if v.start < end and start < v.end]


@pytest.fixture
def g(env, variant):
    return GuardTest(env, variant)


def ok(ret):
    """A syscall-shaped method succeeded: it returned 0 (or None) rather than raising."""
    assert ret in (0, None), ret
    return ret


def pattern(first_page, npages):
    """The selftest's pattern: page i of the file holds 'a' + i % 26."""
    return b"".join(bytes([ord("a") + (i % 26)]) * P
                    for i in range(first_page, first_page + npages))


def assert_guard_fault(mm, addr):
    """A guard answers a read with SIGSEGV / SEGV_MAPERR at the faulting address."""
    with pytest.raises(Fault) as info:
        mm.read(addr, 1)
    assert isinstance(info.value, SegmentationFault)
    assert (info.value.code, info.value.address) == (SEGV_MAPERR, addr)


_SMAPS_HEADER = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) ")


def smaps_vmflags(text, addr):
    inside = False
    for line in text.splitlines():
        m = _SMAPS_HEADER.match(line)
        if m:
            inside = int(m.group(1), 16) <= addr < int(m.group(2), 16)
        elif inside and line.startswith("VmFlags:"):
            return line.split()[1:]
    raise AssertionError(f"no VMA holds {addr:#x} in smaps")


def thp_available(backend):
    """The selftest's thp_available(): the THP sysfs directory exists."""
    return backend != "kernel" or os.path.isdir("/sys/kernel/mm/transparent_hugepage")
