"""Fixtures for the per-rule tests of /work/shared/spec/guard-regions.md §1 (issue #4).

Every scenario runs twice through the `env` fixture of tests/conformance: once on the host
kernel (ptengine.live), which proves the expectation, and once on the simulator, which
proves fidelity. A scenario gets an `S` (fixture `s`): its backend's MM plus helpers that
map the usual backings, probe one access and return (signal, si_code, si_addr), and read
pagemap bits, status counters and smaps fields in a backend-independent form.

Mappings that care where page tables start or end are placed with MAP_FIXED_NOREPLACE in
an arena that is alone in its 512 GiB slot (no PUD, PMD or PTE table exists there before
the scenario), so VmPTE deltas are exact on both backends.
"""
import errno
import re

import pytest

from conformance.conftest import env  # noqa: F401  (the two-backend fixture)
from ptengine.constants import (BUS_ADRERR, BUS_MCEERR_AR, MADV_GUARD_INSTALL, MAP_ANONYMOUS,
                                MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_PRIVATE, MAP_SHARED, PAGE_SIZE,
                                PM_FILE, PM_GUARD_REGION, PM_MMAP_EXCLUSIVE, PM_PFRAME_MASK,
                                PM_PRESENT, PM_SWAP, PM_UFFD_WP, PROT_READ, PROT_WRITE)
from ptengine.errors import Fault
from ptengine.profile import REFERENCE

P = PAGE_SIZE
RW = PROT_READ | PROT_WRITE
ARENA = 0x300000000000          # 512 GiB aligned, far from both backends' own mappings
SLOT = 1 << 39                  # one PGD entry's span

# The pagemap bits whose meaning does not depend on the backend's frame numbers.
PM_BITS = PM_PRESENT | PM_SWAP | PM_FILE | PM_GUARD_REGION | PM_UFFD_WP | PM_MMAP_EXCLUSIVE
# What a page reads as, in those bits.
GUARD = PM_SWAP | PM_GUARD_REGION          # a guard marker
POISON = PM_SWAP                            # a poison marker
ANON = PM_PRESENT | PM_MMAP_EXCLUSIVE       # a private anonymous page mapped once
ZERO = PM_PRESENT                           # the shared zero page
CACHE = PM_PRESENT | PM_FILE | PM_MMAP_EXCLUSIVE   # a page-cache page mapped once
NONE = 0
# The frame field of a guard as a privileged reader sees it: swap type 31
# (SWP_PTE_MARKER), offset 4 (PTE_MARKER_GUARD).
GUARD_FRAME = 31 | (4 << 5)
POISON_FRAME = 31 | (2 << 5)
# The si_code of a poison-marker fault under the reference profile. The spec says
# BUS_MCEERR_AR, but that branch of arch/x86/mm/fault.c:do_sigbus() exists only with
# CONFIG_MEMORY_FAILURE, which the reference machines lack: there the kernel sends SIGBUS
# with BUS_ADRERR (measured).
POISON_CODE = BUS_MCEERR_AR if REFERENCE.memory_failure else BUS_ADRERR

KINDS = ("anon", "shared_anon", "shmem", "shmem_private", "file", "file_private")


def pytest_configure(config):
    config.addinivalue_line("markers", "kinds(*names): backings a rule test runs on")


def pytest_generate_tests(metafunc):
    explicit = any("kind" in str(m.args[0]).replace(" ", "").split(",")
                   for m in metafunc.definition.iter_markers("parametrize"))
    if "kind" in metafunc.fixturenames and not explicit:
        marker = metafunc.definition.get_closest_marker("kinds")
        metafunc.parametrize("kind", marker.args if marker else KINDS)


class S:
    """One scenario on one backend: the MM and its helpers."""

    def __init__(self, env):
        self.backend, self.system, self.mm = env.backend, env.system, env.mm
        self._files = {}
        if self.kernel:
            self.warm_up()

    def warm_up(self):
        """Make the live server touch its own static buffers and signal stack once, so
        that status() RSS deltas measured later show the scenario's pages only."""
        mm = self.mm
        n = 64
        p = mm.mmap(0, (n + 1) * P, RW, MAP_PRIVATE | MAP_ANONYMOUS, None, 0)
        mm.write(p, bytes(n * P))
        mm.read(p, n * P)
        mm.madvise(p + n * P, P, MADV_GUARD_INSTALL)
        mm.access(p + n * P)
        self.fault(p + n * P)
        mm.munmap(p, (n + 1) * P)

    @property
    def kernel(self):
        return self.backend == "kernel"

    # --- files and mappings -------------------------------------------------------------
    def file(self, kind="file", npages=100):
        """The scenario's regular file ("file") or memfd ("shmem"), npages long, filled
        with the pattern (page i holds 'a' + i % 26) the first time it is asked for."""
        if kind not in self._files:
            if kind == "file":
                f = self.system.create_file("rules_test_file", 0)
            else:
                f = self.system.memfd_create("rules_test_memfd", 0)
            f.truncate(npages * P)
            f.pwrite(0, pattern(0, npages))
            self._files[kind] = f
        return self._files[kind]

    def map(self, kind, npages, prot=RW, at=None, *, extra=0, off=0, fd=None):
        """mmap npages of a backing: anon (private), shared_anon, shmem / shmem_private (a
        memfd, MAP_SHARED / MAP_PRIVATE), file / file_private (a regular file). `at` is a
        byte offset into the arena (MAP_FIXED_NOREPLACE there), else the kernel chooses;
        `off` is the file offset in pages."""
        addr = 0 if at is None else ARENA + at
        flags = extra | (0 if at is None or extra & MAP_FIXED else MAP_FIXED_NOREPLACE)
        if kind in ("anon", "shared_anon"):
            flags |= MAP_ANONYMOUS | (MAP_PRIVATE if kind == "anon" else MAP_SHARED)
            return self.mm.mmap(addr, npages * P, prot, flags, None, 0)
        backing = "file" if kind.startswith("file") else "shmem"
        f = fd if fd is not None else self.file(backing)
        flags |= MAP_PRIVATE if kind.endswith("_private") else MAP_SHARED
        return self.mm.mmap(addr, npages * P, prot, flags, f, off * P)

    # --- accesses -----------------------------------------------------------------------
    def fault(self, addr, write=False, mm=None):
        """One user access (a 1-byte read, or a write of b'x'): None if it succeeds, else
        (signal, si_code, si_addr)."""
        mm = mm or self.mm
        try:
            if write:
                mm.write(addr, b"x")
            else:
                mm.read(addr, 1)
        except Fault as f:
            return (f.signal, f.code, f.address)
        return None

    def readable(self, addr, npages, mm=None):
        """Per page: does a read of its first byte succeed? (Only SIGSEGV is expected.)"""
        out = []
        for i in range(npages):
            r = self.fault(addr + i * P, mm=mm)
            assert r is None or r[0].name == "SIGSEGV", r
            out.append(r is None)
        return out

    # --- /proc --------------------------------------------------------------------------
    def pm(self, addr, npages, mm=None):
        """pagemap entries of npages from addr, masked to PM_BITS."""
        return [int(e) & PM_BITS for e in (mm or self.mm).pagemap(addr, npages * P)]

    def pm_frames(self, addr, npages, mm=None):
        """The frame field of non-present entries (swap layout), 0 for present ones."""
        return [0 if int(e) & PM_PRESENT else int(e) & PM_PFRAME_MASK
                for e in (mm or self.mm).pagemap(addr, npages * P)]

    def status(self, mm=None):
        return (mm or self.mm).status()

    def smaps(self, addr, mm=None):
        """The smaps block of the VMA holding addr: kB fields, plus 'VmFlags' (a list)."""
        return smaps_block((mm or self.mm).smaps(), addr)

    def vmflags(self, addr, mm=None):
        return self.smaps(addr, mm)["VmFlags"]

    def vmas_in(self, start, end, mm=None):
        return [(v.start, v.end) for v in (mm or self.mm).vmas()
                if v.start < end and start < v.end]


@pytest.fixture
def s(env):
    return S(env)


class Delta:
    """status() differences across a block: `with Delta(s) as d: ...; d["RssAnon"]`."""

    FIELDS = ("RssAnon", "RssFile", "RssShmem", "VmPTE", "VmLck", "VmSize")

    def __init__(self, s, mm=None):
        self.s, self.mm = s, mm

    def __enter__(self):
        self.before = self.s.status(self.mm)
        return self

    def __exit__(self, *exc):
        after = self.s.status(self.mm)
        self.d = {k: after[k] - self.before[k] for k in self.FIELDS}

    def __getitem__(self, key):
        return self.d[key]


def pattern(first_page, npages):
    """Page i of the test file holds 'a' + i % 26."""
    return b"".join(bytes([ord("a") + (i % 26)]) * P
                    for i in range(first_page, first_page + npages))


def page_byte(i):
    return bytes([ord("a") + (i % 26)])


def errno_of(fn, *args, **kw):
    """The errno fn raises, or 0 if it returns."""
    try:
        fn(*args, **kw)
    except OSError as e:
        return e.errno
    return 0


EINVAL, ENOMEM, EPERM, EACCES, EFAULT = (errno.EINVAL, errno.ENOMEM, errno.EPERM,
                                          errno.EACCES, errno.EFAULT)

_HEADER = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) ")


def smaps_block(text, addr):
    out, inside = None, False
    for line in text.splitlines():
        m = _HEADER.match(line)
        if m:
            if inside:
                break
            inside = int(m.group(1), 16) <= addr < int(m.group(2), 16)
            if inside:
                out = {"range": (int(m.group(1), 16), int(m.group(2), 16))}
        elif inside:
            key, _, value = line.partition(":")
            if key == "VmFlags":
                out["VmFlags"] = value.split()
            else:
                parts = value.split()
                if len(parts) == 2 and parts[1] == "kB" or len(parts) == 1 and parts[0].isdigit():
                    out[key] = int(parts[0])
    if out is None:
        raise AssertionError(f"no VMA holds {addr:#x} in smaps")
    return out
