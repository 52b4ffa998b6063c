"""Every errno path of the address-space syscalls, as one table run on both backends.

Each row is (label, expected, call): `call(c)` makes the call in fresh slots of one process
per backend (a `Ctx`), and its outcome - "ok", an errno name, or a value the row computes
(a layout after a failed call, a brk result) - must be `expected`, which is what the host
kernel returns (notes/kernel-probes.md §1). Rows never share addresses, and undo what would
change later rows (mlockall). Wrong Python types must raise TypeError on both backends.
"""
import errno

import pytest

import ptengine
from ptengine.constants import (F_SEAL_FUTURE_WRITE, F_SEAL_WRITE, MADV_COLD, MADV_COLLAPSE,
                                MADV_DODUMP, MADV_DOFORK, MADV_DONTDUMP, MADV_DONTFORK,
                                MADV_DONTNEED, MADV_DONTNEED_LOCKED, MADV_FREE,
                                MADV_GUARD_INSTALL, MADV_GUARD_REMOVE, MADV_HUGEPAGE,
                                MADV_KEEPONFORK, MADV_MERGEABLE, MADV_NOHUGEPAGE, MADV_NORMAL,
                                MADV_PAGEOUT, MADV_POPULATE_READ, MADV_POPULATE_WRITE,
                                MADV_RANDOM, MADV_REMOVE, MADV_SEQUENTIAL, MADV_UNMERGEABLE,
                                MADV_WILLNEED, MADV_WIPEONFORK, MAP_32BIT, MAP_DROPPABLE,
                                MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_GROWSDOWN, MAP_HUGETLB,
                                MAP_LOCKED, MAP_NONBLOCK, MAP_NORESERVE, MAP_POPULATE,
                                MAP_PRIVATE, MAP_SHARED, MAP_SHARED_VALIDATE, MAP_SYNC,
                                MAP_UNINITIALIZED, MCL_FUTURE, MCL_ONFAULT,
                                MFD_ALLOW_SEALING, MLOCK_ONFAULT, MREMAP_DONTUNMAP,
                                MREMAP_FIXED, MREMAP_MAYMOVE, PROT_EXEC, PROT_GROWSDOWN,
                                PROT_GROWSUP, PROT_NONE, PROT_READ, PROT_SEM, PROT_WRITE,
                                TASK_SIZE)
from ptengine.live.procfs import parse as parse_smaps

from .conftest import ANON, BACKENDS, FAR, GiB, MiB, P, RW, make_system

U64 = (1 << 64) - 1
TiB = 1 << 40
SHANON = MAP_SHARED | 0x20
MAYMOVE, FIXED, DONTUNMAP = MREMAP_MAYMOVE, MREMAP_FIXED, MREMAP_DONTUNMAP
HUGE_2MB = 21 << 26
PIDFD_SELF = -10000


class Ctx:
    """One process on one backend, handing out fresh 4 GiB slots from FAR upwards."""

    def __init__(self, backend, system):
        self.backend, self.system = backend, system
        self.mm = system.spawn()
        self.next_slot = FAR
        self._file = None

    def slot(self):
        base, self.next_slot = self.next_slot, self.next_slot + 4 * GiB
        return base

    def anon(self, npages=4, prot=RW, flags=ANON):
        """npages mapped at a fresh slot."""
        return self.mm.mmap(self.slot(), npages * P, prot, flags | MAP_FIXED_NOREPLACE)

    def holey(self, prot=RW):
        """A fresh slot with [0,4P) and [5P,9P) mapped and a hole at [4P,5P)."""
        a = self.anon(9, prot)
        self.mm.munmap(a + 4 * P, P)
        return a

    def map_file(self, f, npages=4, prot=RW, flags=MAP_SHARED, off=0):
        return self.mm.mmap(self.slot(), npages * P, prot, flags | MAP_FIXED_NOREPLACE, f,
                            off)

    @property
    def file(self):
        """A 16-page regular file, open read-write."""
        if self._file is None:
            self._file = self.system.create_file("errno.bin", 16 * P)
        return self._file

    def layout(self, base, npages=16):
        """[(first page, end page, perms)] of the VMAs in [base, base + npages pages)."""
        end = base + npages * P
        return [((v.start - base) // P, (v.end - base) // P, v.perms)
                for v in parse_smaps(self.mm.smaps()) if v.start < end and base < v.end]

    def vmflags(self, addr):
        v = [v for v in parse_smaps(self.mm.smaps()) if v.start <= addr < v.end]
        return " ".join(v[0].vmflags) if v else None

    def vmlck(self):
        return self.mm.status()["VmLck"]


@pytest.fixture(scope="module", params=BACKENDS)
def ctx(request):
    system = make_system(request.param)
    yield Ctx(request.param, system)
    if request.param == "kernel":
        system.close()


def ename(err):
    """The errno's name as the man pages spell it (Python calls 95 ENOTSUP)."""
    return "EOPNOTSUPP" if err == errno.EOPNOTSUPP else errno.errorcode[err]


def attempt(call, *args):
    """"ok", or the errno name of the OSError the call raised."""
    try:
        call(*args)
    except OSError as e:
        return ename(e.errno)
    return "ok"


# A row whose range reaches TASK_SIZE (or 0): the live backend refuses it before the
# kernel sees it, as it would overlap the server's own stack (or program).
LIVE_REFUSES = "live backend refuses ranges over its server's own mappings"


def check(c, fn, expected, sim_bug):
    """Run one row. A str expectation is the call's outcome ("ok" or an errno name);
    anything else is compared with what fn returns. A row the simulator is known to get
    wrong is a strict xfail on that backend."""
    if sim_bug == LIVE_REFUSES:
        if c.backend == "kernel":
            pytest.skip(LIVE_REFUSES)
        sim_bug = None
    got = attempt(fn, c) if isinstance(expected, str) else fn(c)
    if c.backend == "ptengine" and sim_bug:
        if got == expected:
            pytest.fail(f"XPASS(strict): the simulator now gets this right: {sim_bug}")
        pytest.xfail(sim_bug)
    assert got == expected


def rows(*table):
    """pytest params from (label, expected, fn[, sim_bug]) tuples."""
    return [pytest.param(fn, expected, bug[0] if bug else None, id=label)
            for label, expected, fn, *bug in table]


def big(length, prot, flags):
    def run(c):
        addr = c.mm.mmap(0, length, prot, flags)
        c.mm.munmap(addr, length)
        return "ok"
    return run


# --- mmap ----------------------------------------------------------------------------------

def _into_sealed(call):
    """8 pages with [6,8) sealed; call(c, base) acts on [2,8): the kernel splits at 2
    before it meets the sealed VMA, and leaves that split when it fails with EPERM."""
    def run(c):
        a = c.anon(8)
        c.mm.mseal(a + 6 * P, 2 * P)
        return attempt(call, c, a), c.layout(a)
    return run


SPLIT_LEFT_BEHIND = ("EPERM", [(0, 2, "rw-p"), (2, 6, "rw-p"), (6, 8, "rw-p")])



MMAP = rows(
    ("FIXED unaligned", "EINVAL", lambda c: c.mm.mmap(c.slot() + 1, P, RW, ANON | MAP_FIXED)),
    ("FIXED_NOREPLACE unaligned", "EINVAL",
     lambda c: c.mm.mmap(c.slot() + 1, P, RW, ANON | MAP_FIXED_NOREPLACE)),
    ("len 0", "EINVAL", lambda c: c.mm.mmap(0, 0, RW, ANON)),
    ("len 0 FIXED", "EINVAL", lambda c: c.mm.mmap(c.slot(), 0, RW, ANON | MAP_FIXED)),
    ("len ~0", "ENOMEM", lambda c: c.mm.mmap(0, U64, RW, ANON)),
    ("len -4096", "ENOMEM", lambda c: c.mm.mmap(0, -4096, RW, ANON)),
    ("len TASK_SIZE+1P", "ENOMEM", lambda c: c.mm.mmap(0, TASK_SIZE + P, PROT_NONE, ANON)),
    ("len TASK_SIZE", "ENOMEM", lambda c: c.mm.mmap(0, TASK_SIZE, PROT_NONE, ANON)),
    ("len 1<<47 PROT_NONE", "ENOMEM", lambda c: c.mm.mmap(0, 1 << 47, PROT_NONE, ANON)),
    ("64 TiB RW NORESERVE", "ok", big(64 * TiB, RW, ANON | MAP_NORESERVE)),
    ("64 TiB PROT_NONE (not accounted)", "ok", big(64 * TiB, PROT_NONE, ANON)),
    ("64 TiB PROT_READ (not accounted)", "ok", big(64 * TiB, PROT_READ, ANON)),
    ("64 TiB RW private (overcommit heuristic)", "ENOMEM", big(64 * TiB, RW, ANON)),
    ("64 GiB RW private > RAM", "ENOMEM", big(64 * GiB, RW, ANON)),
    ("64 GiB RW shared anon > RAM", "ENOMEM", big(64 * GiB, RW, SHANON)),
    ("64 GiB RW shared anon NORESERVE", "ok", big(64 * GiB, RW, SHANON | MAP_NORESERVE)),
    ("16 GiB RW private < RAM", "ok", big(16 * GiB, RW, ANON)),
    ("unknown flag, private anon", "ok", lambda c: c.mm.mmap(0, P, RW, ANON | 0x800000)),
    ("unknown flag, shared anon", "ok", lambda c: c.mm.mmap(0, P, RW, SHANON | 0x800000)),
    ("SHARED_VALIDATE|ANON|unknown", "EINVAL",
     lambda c: c.mm.mmap(0, P, RW, MAP_SHARED_VALIDATE | 0x20 | 0x800000)),
    ("SHARED_VALIDATE|ANON", "EINVAL", lambda c: c.mm.mmap(0, P, RW, MAP_SHARED_VALIDATE | 0x20)),
    ("SHARED_VALIDATE|ANON|HUGE_2MB", "EINVAL",
     lambda c: c.mm.mmap(0, P, RW, MAP_SHARED_VALIDATE | 0x20 | HUGE_2MB)),
    ("SHARED_VALIDATE file, unknown flag", "EOPNOTSUPP",
     lambda c: c.mm.mmap(0, P, RW, MAP_SHARED_VALIDATE | 0x800000, c.file)),
    ("SHARED_VALIDATE file, no unknown flag", "ok",
     lambda c: c.mm.mmap(0, P, RW, MAP_SHARED_VALIDATE, c.file)),
    ("SHARED_VALIDATE|SYNC ext4", "EOPNOTSUPP",
     lambda c: c.mm.mmap(0, P, RW, MAP_SHARED_VALIDATE | MAP_SYNC, c.file)),
    ("PRIVATE|SYNC ext4", "EOPNOTSUPP",
     lambda c: c.mm.mmap(0, P, RW, MAP_PRIVATE | MAP_SYNC, c.file)),
    ("SHARED|SYNC ext4", "EOPNOTSUPP",
     lambda c: c.mm.mmap(0, P, RW, MAP_SHARED | MAP_SYNC, c.file)),
    ("PRIVATE|SYNC anon", "ok", lambda c: c.mm.mmap(0, P, RW, ANON | MAP_SYNC)),
    ("type 0 anon", "EINVAL", lambda c: c.mm.mmap(0, P, RW, 0x20)),
    ("type 0 file", "EINVAL", lambda c: c.mm.mmap(0, P, RW, 0, c.file)),
    ("type 4 anon", "EINVAL", lambda c: c.mm.mmap(0, P, RW, 0x04 | 0x20)),
    ("type 0xf anon", "EINVAL", lambda c: c.mm.mmap(0, P, RW, 0x0F | 0x20)),
    ("DROPPABLE anon", "ok", lambda c: c.mm.mmap(0, P, RW, MAP_DROPPABLE | 0x20)),
    ("DROPPABLE file", "EINVAL", lambda c: c.mm.mmap(0, P, RW, MAP_DROPPABLE, c.file)),
    ("DROPPABLE|GROWSDOWN", "EINVAL",
     lambda c: c.mm.mmap(0, P, RW, MAP_DROPPABLE | 0x20 | MAP_GROWSDOWN)),
    ("FIXED at TASK_SIZE", "ENOMEM", lambda c: c.mm.mmap(TASK_SIZE, P, RW, ANON | MAP_FIXED)),
    ("FIXED ending past TASK_SIZE", "ENOMEM",
     lambda c: c.mm.mmap(TASK_SIZE - P, 2 * P, RW, ANON | MAP_FIXED_NOREPLACE)),
    ("hint TASK_SIZE ignored", True, lambda c: c.mm.mmap(TASK_SIZE, P, RW, ANON) < TASK_SIZE - P),
    ("file offset 1", "EINVAL", lambda c: c.mm.mmap(0, P, RW, MAP_PRIVATE, c.file, 1)),
    ("file offset 2048", "EINVAL", lambda c: c.mm.mmap(0, P, RW, MAP_PRIVATE, c.file, 2048)),
    ("anon offset 1", "EINVAL", lambda c: c.mm.mmap(0, P, RW, ANON, None, 1)),
    ("anon offset 4096", "ok", lambda c: c.mm.mmap(0, P, RW, ANON, None, 4096)),
    ("file offset -4096 (pgoff overflow)", "EOVERFLOW",
     lambda c: c.mm.mmap(0, P, RW, MAP_PRIVATE, c.file, -4096)),
    ("anon offset -4096 (ignored)", "ok",
     lambda c: c.mm.mmap(0, P, RW, ANON, None, -4096)),
    ("file offset 1<<62", "ok", lambda c: c.mm.mmap(0, P, RW, MAP_PRIVATE, c.file, 1 << 62)),
    ("file offset beyond EOF", "ok", lambda c: c.mm.mmap(0, P, RW, MAP_PRIVATE, c.file, MiB)),
    ("O_RDONLY SHARED RW", "EACCES",
     lambda c: c.mm.mmap(0, P, RW, MAP_SHARED, c.file.reopen(readonly=True))),
    ("O_RDONLY SHARED R", "ok",
     lambda c: c.mm.mmap(0, P, PROT_READ, MAP_SHARED, c.file.reopen(readonly=True))),
    ("O_RDONLY PRIVATE RW", "ok",
     lambda c: c.mm.mmap(0, P, RW, MAP_PRIVATE, c.file.reopen(readonly=True))),
    ("O_RDONLY PRIVATE X", "ok",
     lambda c: c.mm.mmap(0, P, PROT_EXEC, MAP_PRIVATE, c.file.reopen(readonly=True))),
    ("ANON|PRIVATE ignores the fd", "ok", lambda c: c.mm.mmap(0, P, RW, ANON, c.file)),
    ("ANON|SHARED ignores the fd", "ok", lambda c: c.mm.mmap(0, P, RW, SHANON, c.file)),
    ("closed fd", "EBADF", lambda c: c.mm.mmap(0, P, RW, MAP_PRIVATE, _closed(c))),
    ("no fd, not anonymous", "EBADF", lambda c: c.mm.mmap(0, P, RW, MAP_PRIVATE)),
    ("prot 0x10", "ok", lambda c: c.mm.mmap(0, P, 0x10, ANON)),
    ("prot 0x80000000", "ok", lambda c: c.mm.mmap(0, P, 0x80000000, ANON)),
    ("prot RW|SEM", "ok", lambda c: c.mm.mmap(0, P, RW | PROT_SEM, ANON)),
    ("prot RW|GROWSDOWN", "ok", lambda c: c.mm.mmap(0, P, RW | PROT_GROWSDOWN, ANON)),
    ("prot RW|GROWSUP", "ok", lambda c: c.mm.mmap(0, P, RW | PROT_GROWSUP, ANON)),
    ("GROWSDOWN private anon", "ok", lambda c: c.mm.mmap(0, 4 * P, RW, ANON | MAP_GROWSDOWN)),
    ("GROWSDOWN shared anon", "EINVAL", lambda c: c.mm.mmap(0, 4 * P, RW, SHANON | MAP_GROWSDOWN)),
    ("GROWSDOWN private file", "EINVAL",
     lambda c: c.mm.mmap(0, 4 * P, RW, MAP_PRIVATE | MAP_GROWSDOWN, c.file)),
    ("GROWSDOWN shared file", "EINVAL",
     lambda c: c.mm.mmap(0, 4 * P, RW, MAP_SHARED | MAP_GROWSDOWN, c.file)),
    ("HUGETLB 2 MiB (no huge pages)", "ENOMEM",
     lambda c: c.mm.mmap(0, 2 * MiB, RW, ANON | MAP_HUGETLB)),
    ("HUGETLB 1P", "ENOMEM", lambda c: c.mm.mmap(0, P, RW, ANON | MAP_HUGETLB)),
    ("MAP_32BIT", "ok", lambda c: c.mm.mmap(0, P, RW, ANON | MAP_32BIT)),
    ("MAP_UNINITIALIZED", "ok", lambda c: c.mm.mmap(0, P, RW, ANON | MAP_UNINITIALIZED)),
    ("MAP_LOCKED", "ok", lambda c: c.mm.mmap(0, P, RW, ANON | MAP_LOCKED)),
    ("MAP_POPULATE|MAP_NONBLOCK", "ok",
     lambda c: c.mm.mmap(0, P, RW, ANON | MAP_POPULATE | MAP_NONBLOCK)),
    ("HUGE_2MB bits without HUGETLB", "ok", lambda c: c.mm.mmap(0, P, RW, ANON | HUGE_2MB)),
    ("FIXED_NOREPLACE over a VMA", "EEXIST",
     lambda c: c.mm.mmap(c.anon(4), 4 * P, RW, ANON | MAP_FIXED_NOREPLACE)),
    ("FIXED_NOREPLACE partly over", "EEXIST",
     lambda c: c.mm.mmap(c.anon(4) - P, 2 * P, RW, ANON | MAP_FIXED_NOREPLACE)),
    ("FIXED from mid-VMA into a sealed one: the split stays", SPLIT_LEFT_BEHIND,
     _into_sealed(lambda c, a: c.mm.mmap(a + 2 * P, 6 * P, PROT_READ, ANON | MAP_FIXED))),
    ("FIXED over a sealed VMA", "EPERM", lambda c: c.mm.mmap(_sealed(c), P, RW, ANON | MAP_FIXED)),
    ("FIXED over sealed + unsealed: nothing changes", ("EPERM", [(0, 2, "rw-p"), (2, 4, "rw-p")]),
     lambda c: _fixed_over_sealed(c)),
)


def _closed(c):
    f = c.system.create_file("closed.bin", P)
    f.close()
    return f


def _sealed(c, npages=4, prot=RW):
    a = c.anon(npages, prot)
    c.mm.mseal(a, npages * P)
    return a


def _fixed_over_sealed(c):
    a = c.anon(4)
    c.mm.mseal(a + 2 * P, 2 * P)
    return attempt(c.mm.mmap, a, 4 * P, PROT_READ, ANON | MAP_FIXED), c.layout(a)


@pytest.mark.parametrize("fn, expected, sim_bug", MMAP)
def test_mmap(ctx, fn, expected, sim_bug):
    check(ctx, fn, expected, sim_bug)


def test_memfd_seals(ctx):
    """After F_SEAL_WRITE, or F_SEAL_FUTURE_WRITE, a shared writable map is EPERM and a
    shared read-only one has no VM_MAYWRITE (mprotect RW: EACCES); private writable maps
    stay fine. F_SEAL_WRITE is EBUSY while a shared writable mapping exists."""
    c, mm = ctx, ctx.mm
    m = c.system.memfd_create("seals", MFD_ALLOW_SEALING)
    m.truncate(4 * P)
    got = [attempt(m.add_seals, F_SEAL_WRITE)]
    got.append(attempt(c.map_file, m, 1, RW))
    ro = c.map_file(m, 1, PROT_READ)
    got.append(attempt(mm.mprotect, ro, P, RW))
    got.append(attempt(c.map_file, m, 1, RW, MAP_PRIVATE))
    f = c.system.memfd_create("future", MFD_ALLOW_SEALING)
    f.truncate(4 * P)
    c.map_file(f, 1, RW)
    got.append(attempt(f.add_seals, F_SEAL_WRITE))
    got.append(attempt(f.add_seals, F_SEAL_FUTURE_WRITE))
    got.append(attempt(c.map_file, f, 1, RW))
    ro = c.map_file(f, 1, PROT_READ)
    got.append(attempt(mm.mprotect, ro, P, RW))
    got.append(attempt(c.map_file, f, 1, RW, MAP_PRIVATE))
    assert got == ["ok", "EPERM", "EACCES", "ok", "EBUSY", "ok", "EPERM", "EACCES", "ok"]


def test_memfd_write_seal_busy_with_shared_read_only_map(ctx):
    """F_SEAL_WRITE is refused (EBUSY) while any VM_SHARED|VM_MAYWRITE mapping exists: a
    MAP_SHARED PROT_READ map of an O_RDWR memfd counts (it could be mprotect'ed writable)."""
    c = ctx
    m = c.system.memfd_create("busy", MFD_ALLOW_SEALING)
    m.truncate(4 * P)
    ro = c.map_file(m, 1, PROT_READ)
    check(c, lambda c: (attempt(m.add_seals, F_SEAL_WRITE),), ("EBUSY",), None)
    c.mm.munmap(ro, P)
    assert attempt(m.add_seals, F_SEAL_WRITE) == "ok"


# --- munmap --------------------------------------------------------------------------------

def _munmap_over_sealed(c):
    a = c.holey()
    c.mm.mseal(a, P)
    return attempt(c.mm.munmap, a, 9 * P), c.layout(a)


MUNMAP = rows(
    ("unaligned", "EINVAL", lambda c: c.mm.munmap(c.anon() + 1, P)),
    ("len 0", "EINVAL", lambda c: c.mm.munmap(c.anon(), 0)),
    ("len 0 unaligned", "EINVAL", lambda c: c.mm.munmap(c.anon() + 1, 0)),
    ("unmapped range", "ok", lambda c: c.mm.munmap(c.slot(), 4 * P)),
    ("1 byte unmaps a page", ("ok", [(1, 8, "rw-p")]),
     lambda c: (attempt(c.mm.munmap, a := c.anon(8), 1), c.layout(a))),
    ("VMA end and hole", "ok", lambda c: c.mm.munmap(c.anon(8) + 7 * P, 2 * P)),
    ("end past TASK_SIZE", "EINVAL", lambda c: c.mm.munmap(TASK_SIZE - P, 2 * P), LIVE_REFUSES),
    ("at TASK_SIZE", "EINVAL", lambda c: c.mm.munmap(TASK_SIZE, P)),
    ("0, TASK_SIZE+1P", "EINVAL", lambda c: c.mm.munmap(0, TASK_SIZE + P), LIVE_REFUSES),
    ("len ~0", "EINVAL", lambda c: c.mm.munmap(c.anon(), U64)),
    ("len -4096", "EINVAL", lambda c: c.mm.munmap(c.anon(), -4096)),
    ("addr -4096", "EINVAL", lambda c: c.mm.munmap(-P, P)),
    ("len 0 at TASK_SIZE - 1P", "EINVAL", lambda c: c.mm.munmap(TASK_SIZE - P, 0)),
    ("addr 0 (nothing there)", "ok", lambda c: c.mm.munmap(0, P)),
    ("sealed", "EPERM", lambda c: c.mm.munmap(_sealed(c), P)),
    ("sealed in the range: nothing changes",
     ("EPERM", [(0, 1, "rw-p"), (1, 4, "rw-p"), (5, 9, "rw-p")]), _munmap_over_sealed),
    ("from mid-VMA into a sealed one: the split stays", SPLIT_LEFT_BEHIND,
     _into_sealed(lambda c, a: c.mm.munmap(a + 2 * P, 6 * P))),
    ("split at the middle needs a VMA: fine below the limit", "ok",
     lambda c: c.mm.munmap(c.anon(3) + P, P)),
)

@pytest.mark.parametrize("fn, expected, sim_bug", MUNMAP)
def test_munmap(ctx, fn, expected, sim_bug):
    check(ctx, fn, expected, sim_bug)


# --- mprotect ------------------------------------------------------------------------------

def _after(call):
    """Run call(c, base) on a fresh holey slot; report (outcome, layout afterwards)."""
    def run(c):
        a = c.holey()
        return attempt(call, c, a), c.layout(a)
    return run


def _growsdown(c):
    a = c.anon(4, RW, ANON | MAP_GROWSDOWN)
    c.mm.mprotect(a + 2 * P, P, PROT_READ | PROT_GROWSDOWN)
    return c.layout(a)


def _shared_ro_file(c):
    return c.map_file(c.file.reopen(readonly=True), 4, PROT_READ)


MPROTECT = rows(
    ("unaligned", "EINVAL", lambda c: c.mm.mprotect(c.anon() + 1, P, PROT_READ)),
    ("len 0", "ok", lambda c: c.mm.mprotect(c.anon(), 0, PROT_READ)),
    ("len 0 unaligned", "EINVAL", lambda c: c.mm.mprotect(c.anon() + 1, 0, PROT_READ)),
    ("len 0 unmapped", "ok", lambda c: c.mm.mprotect(c.slot(), 0, PROT_READ)),
    ("over a hole: the part before it changed", ("ENOMEM", [(0, 4, "r--p"), (5, 9, "rw-p")]),
     _after(lambda c, a: c.mm.mprotect(a, 9 * P, PROT_READ))),
    ("starting in a hole: nothing changed", ("ENOMEM", [(0, 4, "rw-p"), (5, 9, "rw-p")]),
     _after(lambda c, a: c.mm.mprotect(a + 4 * P, 5 * P, PROT_NONE))),
    ("ending in a hole", ("ENOMEM", [(0, 2, "rw-p"), (2, 4, "---p"), (5, 9, "rw-p")]),
     _after(lambda c, a: c.mm.mprotect(a + 2 * P, 3 * P, PROT_NONE))),
    ("unmapped", "ENOMEM", lambda c: c.mm.mprotect(c.slot(), P, PROT_READ)),
    ("prot 0x10", "EINVAL", lambda c: c.mm.mprotect(c.anon(), P, 0x10)),
    ("prot RW|SEM", "ok", lambda c: c.mm.mprotect(c.anon(), P, RW | PROT_SEM)),
    ("GROWSDOWN on a plain VMA", "EINVAL",
     lambda c: c.mm.mprotect(c.anon(), P, RW | PROT_GROWSDOWN)),
    ("GROWSUP", "EINVAL", lambda c: c.mm.mprotect(c.anon(), P, RW | PROT_GROWSUP)),
    ("GROWSDOWN|GROWSUP", "EINVAL",
     lambda c: c.mm.mprotect(c.anon(), P, RW | PROT_GROWSDOWN | PROT_GROWSUP)),
    ("end past TASK_SIZE", "ENOMEM",
     lambda c: c.mm.mprotect(c.anon(), TASK_SIZE, PROT_READ), LIVE_REFUSES),
    ("len ~0", "ENOMEM", lambda c: c.mm.mprotect(c.anon(), U64, PROT_READ)),
    ("len -4096", "ENOMEM", lambda c: c.mm.mprotect(c.anon(), -4096, PROT_READ)),
    # The end lands exactly on 2**64 (0 in 64 bits), or rounding the length up wraps it.
    ("end exactly 2**64", "ENOMEM", lambda c: c.mm.mprotect(-2 * P, 2 * P, PROT_READ)),
    ("len rounds up past 2**64", "ENOMEM", lambda c: c.mm.mprotect(-2 * P, P + 1, PROT_READ)),
    ("len 1 in the last page", "ENOMEM", lambda c: c.mm.mprotect(-P, 1, PROT_READ)),
    ("GROWSDOWN extends the change to the VMA start", [(0, 3, "r--p"), (3, 4, "rw-p")],
     _growsdown),
    ("shared O_RDONLY file to RW", "EACCES", lambda c: c.mm.mprotect(_shared_ro_file(c), P, RW)),
    ("shared O_RDONLY file to R|X", "ok",
     lambda c: c.mm.mprotect(_shared_ro_file(c), P, PROT_READ | PROT_EXEC)),
    ("private O_RDONLY file to RW", "ok",
     lambda c: c.mm.mprotect(c.map_file(c.file.reopen(), 4, PROT_READ, MAP_PRIVATE), P, RW)),
    ("shared RW file to R|X", "ok",
     lambda c: c.mm.mprotect(c.map_file(c.file), P, PROT_READ | PROT_EXEC)),
    ("PROT_EXEC only", "ok", lambda c: c.mm.mprotect(c.anon(), 4 * P, PROT_EXEC)),
    ("PROT_WRITE only", [(0, 4, "-w-p")],
     lambda c: (c.mm.mprotect(a := c.anon(), 4 * P, PROT_WRITE), c.layout(a))[1]),
    ("sealed", "EPERM", lambda c: c.mm.mprotect(_sealed(c), P, PROT_READ)),
    ("sealed, same prot", "EPERM", lambda c: c.mm.mprotect(_sealed(c), P, RW)),
    ("sealed first page: nothing changes",
     ("EPERM", [(0, 1, "rw-p"), (1, 4, "rw-p"), (5, 9, "rw-p")]),
     _after(lambda c, a: (c.mm.mseal(a, P), c.mm.mprotect(a, 4 * P, PROT_READ)))),
    ("over a guard-gap growsdown VMA start", "ok",
     lambda c: c.mm.mprotect(c.anon(4, RW, ANON | MAP_GROWSDOWN), 4 * P, PROT_READ)),
)

@pytest.mark.parametrize("fn, expected, sim_bug", MPROTECT)
def test_mprotect(ctx, fn, expected, sim_bug):
    check(ctx, fn, expected, sim_bug)


# --- madvise -------------------------------------------------------------------------------

def _adv(advice, setup="anon"):
    """madvise(advice) on 4 pages of a fresh mapping of the given kind."""
    def run(c):
        if setup == "anon":
            a = c.anon()
        elif setup == "shared anon":
            a = c.anon(4, RW, SHANON)
        elif setup == "private file":
            a = c.map_file(c.file, 4, RW, MAP_PRIVATE)
        elif setup == "shared file":
            a = c.map_file(c.file)
        elif setup == "shared file R":
            a = c.map_file(c.file, 4, PROT_READ)
        elif setup in ("memfd shared", "memfd private", "locked memfd"):
            m = c.system.memfd_create("adv")
            m.truncate(4 * P)
            a = c.map_file(m, 4, RW, MAP_PRIVATE if setup == "memfd private" else MAP_SHARED)
            if setup == "locked memfd":
                c.mm.mlock(a, 4 * P)
        elif setup == "locked":
            a = c.anon()
            c.mm.mlock(a, 4 * P)
        elif setup == "sealed RW":
            a = _sealed(c)
        elif setup == "sealed RO":
            a = _sealed(c, 4, PROT_READ)
        elif setup == "sealed RO private file":
            a = c.map_file(c.file, 4, PROT_READ, MAP_PRIVATE)
            c.mm.mseal(a, 4 * P)
        elif setup == "sealed RO shared file":
            a = c.map_file(c.file, 4, PROT_READ)
            c.mm.mseal(a, 4 * P)
        elif setup == "PROT_NONE":
            a = c.anon(4, PROT_NONE)
        elif setup == "PROT_READ":
            a = c.anon(4, PROT_READ)
        elif setup == "guard":
            a = c.anon()
            c.mm.madvise(a, P, MADV_GUARD_INSTALL)
        elif setup == "beyond EOF":
            f = c.system.create_file("short.bin", 2 * P)
            a = c.map_file(f, 4, PROT_READ)
        else:
            raise AssertionError(setup)
        return c.mm.madvise(a, 4 * P, advice)
    return run


def _random_over_hole(c):
    a = c.holey()
    return attempt(c.mm.madvise, a, 9 * P, MADV_RANDOM), c.vmflags(a), c.vmflags(a + 5 * P)


MADVISE = rows(
    ("advice 26", "EINVAL", lambda c: c.mm.madvise(c.anon(), P, 26)),
    ("advice 99", "EINVAL", lambda c: c.mm.madvise(c.anon(), P, 99)),
    ("advice 104", "EINVAL", lambda c: c.mm.madvise(c.anon(), P, 104)),
    ("advice -1", "EINVAL", lambda c: c.mm.madvise(c.anon(), P, -1)),
    ("unaligned", "EINVAL", lambda c: c.mm.madvise(c.anon() + 1, P, MADV_DONTNEED)),
    ("unaligned len 0", "EINVAL", lambda c: c.mm.madvise(c.anon() + 1, 0, MADV_DONTNEED)),
    ("unmapped len 0", "ok", lambda c: c.mm.madvise(c.slot(), 0, MADV_DONTNEED)),
    ("unmapped len 0 advice 99", "EINVAL", lambda c: c.mm.madvise(c.slot(), 0, 99)),
    ("unmapped DONTNEED", "ENOMEM", lambda c: c.mm.madvise(c.slot(), P, MADV_DONTNEED)),
    ("unmapped NORMAL", "ENOMEM", lambda c: c.mm.madvise(c.slot(), P, MADV_NORMAL)),
    ("unmapped WILLNEED", "ENOMEM", lambda c: c.mm.madvise(c.slot(), P, MADV_WILLNEED)),
    ("unmapped GUARD_REMOVE", "ENOMEM", lambda c: c.mm.madvise(c.slot(), P, MADV_GUARD_REMOVE)),
    ("DONTNEED over a hole", "ENOMEM", lambda c: c.mm.madvise(c.holey(), 9 * P, MADV_DONTNEED)),
    ("RANDOM over a hole sets rr on both VMAs",
     ("ENOMEM", "rd wr mr mw me rr ac", "rd wr mr mw me rr ac"), _random_over_hole),
    ("GUARD_INSTALL over a hole", "ENOMEM",
     lambda c: c.mm.madvise(c.holey(), 9 * P, MADV_GUARD_INSTALL)),
    ("len ~0", "EINVAL", lambda c: c.mm.madvise(c.anon(), U64, MADV_DONTNEED)),
    ("len -4096", "EINVAL", lambda c: c.mm.madvise(c.anon(), -4096, MADV_DONTNEED)),
    ("end exactly 2**64", "EINVAL", lambda c: c.mm.madvise(U64 + 1 - 2 * P, 2 * P,
                                                             MADV_DONTNEED)),
    ("len 1 in the last page", "EINVAL", lambda c: c.mm.madvise(U64 + 1 - P, 1,
                                                                  MADV_GUARD_INSTALL)),
    ("len 0 in the last page", "ok", lambda c: c.mm.madvise(U64 + 1 - P, 0, MADV_DONTNEED)),
    ("end past TASK_SIZE", "ENOMEM",
     lambda c: c.mm.madvise(TASK_SIZE - P, 2 * P, MADV_DONTNEED), LIVE_REFUSES),
    ("1 byte", "ok", lambda c: c.mm.madvise(c.anon(), 1, MADV_DONTNEED)),
    ("GUARD_INSTALL unaligned", "EINVAL",
     lambda c: c.mm.madvise(c.anon() + 1, P, MADV_GUARD_INSTALL)),
    ("WIPEONFORK private file", "EINVAL", _adv(MADV_WIPEONFORK, "private file")),
    ("WIPEONFORK shared file", "EINVAL", _adv(MADV_WIPEONFORK, "shared file")),
    ("WIPEONFORK shared anon", "EINVAL", _adv(MADV_WIPEONFORK, "shared anon")),
    ("WIPEONFORK private anon", "ok", _adv(MADV_WIPEONFORK)),
    ("KEEPONFORK private file", "ok", _adv(MADV_KEEPONFORK, "private file")),
    ("FREE private file", "EINVAL", _adv(MADV_FREE, "private file")),
    ("FREE shared file", "EINVAL", _adv(MADV_FREE, "shared file")),
    ("FREE shared anon", "EINVAL", _adv(MADV_FREE, "shared anon")),
    ("FREE memfd private", "EINVAL", _adv(MADV_FREE, "memfd private")),
    ("FREE private anon", "ok", _adv(MADV_FREE)),
    ("REMOVE private anon", "EINVAL", _adv(MADV_REMOVE)),
    ("REMOVE private file", "EACCES", _adv(MADV_REMOVE, "private file")),
    ("REMOVE shared file", "ok", _adv(MADV_REMOVE, "shared file")),
    ("REMOVE shared anon", "ok", _adv(MADV_REMOVE, "shared anon")),
    ("REMOVE memfd shared", "ok", _adv(MADV_REMOVE, "memfd shared")),
    ("REMOVE memfd private", "EACCES", _adv(MADV_REMOVE, "memfd private")),
    ("REMOVE shared file mapped R", "ok", _adv(MADV_REMOVE, "shared file R")),
    ("DONTNEED private file", "ok", _adv(MADV_DONTNEED, "private file")),
    ("DONTNEED shared file", "ok", _adv(MADV_DONTNEED, "shared file")),
    ("DONTNEED shared anon", "ok", _adv(MADV_DONTNEED, "shared anon")),
    ("MERGEABLE private file", "ok", _adv(MADV_MERGEABLE, "private file")),
    ("MERGEABLE private anon", "ok", _adv(MADV_MERGEABLE)),
    ("UNMERGEABLE private anon", "ok", _adv(MADV_UNMERGEABLE)),
    ("HUGEPAGE private anon", "ok", _adv(MADV_HUGEPAGE)),
    ("HUGEPAGE shared file", "ok", _adv(MADV_HUGEPAGE, "shared file")),
    ("NOHUGEPAGE private anon", "ok", _adv(MADV_NOHUGEPAGE)),
    ("SEQUENTIAL", "ok", _adv(MADV_SEQUENTIAL)),
    ("DONTDUMP", "ok", _adv(MADV_DONTDUMP)),
    ("DODUMP", "ok", _adv(MADV_DODUMP)),
    ("DOFORK", "ok", _adv(MADV_DOFORK)),
    ("COLD", "ok", _adv(MADV_COLD)),
    ("PAGEOUT (no swap)", "ok", _adv(MADV_PAGEOUT)),
    ("COLLAPSE without a whole 2 MiB", "EINVAL", _adv(MADV_COLLAPSE)),
    ("locked DONTNEED", "EINVAL", _adv(MADV_DONTNEED, "locked")),
    ("locked DONTNEED_LOCKED", "ok", _adv(MADV_DONTNEED_LOCKED, "locked")),
    ("locked FREE", "EINVAL", _adv(MADV_FREE, "locked")),
    ("locked PAGEOUT", "EINVAL", _adv(MADV_PAGEOUT, "locked")),
    ("locked COLD", "EINVAL", _adv(MADV_COLD, "locked")),
    ("locked GUARD_INSTALL", "EINVAL", _adv(MADV_GUARD_INSTALL, "locked")),
    ("locked GUARD_REMOVE", "ok", _adv(MADV_GUARD_REMOVE, "locked")),
    ("locked REMOVE anon", "EINVAL", _adv(MADV_REMOVE, "locked")),
    ("locked REMOVE memfd shared", "EINVAL", _adv(MADV_REMOVE, "locked memfd")),
    ("locked WIPEONFORK", "ok", _adv(MADV_WIPEONFORK, "locked")),
    ("locked DONTFORK", "ok", _adv(MADV_DONTFORK, "locked")),
    ("POPULATE_READ RW", "ok", _adv(MADV_POPULATE_READ)),
    ("POPULATE_READ over a hole", "ENOMEM",
     lambda c: c.mm.madvise(c.holey(), 9 * P, MADV_POPULATE_READ)),
    ("POPULATE_READ from a hole", "ENOMEM",
     lambda c: c.mm.madvise(c.holey() + 4 * P, 2 * P, MADV_POPULATE_READ)),
    ("POPULATE_READ PROT_NONE", "EINVAL", _adv(MADV_POPULATE_READ, "PROT_NONE")),
    ("POPULATE_WRITE PROT_NONE", "EINVAL", _adv(MADV_POPULATE_WRITE, "PROT_NONE")),
    ("POPULATE_WRITE PROT_READ", "EINVAL", _adv(MADV_POPULATE_WRITE, "PROT_READ")),
    ("POPULATE_READ PROT_READ", "ok", _adv(MADV_POPULATE_READ, "PROT_READ")),
    ("POPULATE_READ over a guard", "EFAULT", _adv(MADV_POPULATE_READ, "guard")),
    ("POPULATE_WRITE over a guard", "EFAULT", _adv(MADV_POPULATE_WRITE, "guard")),
    ("WILLNEED over a guard", "ok", _adv(MADV_WILLNEED, "guard")),
    ("POPULATE_WRITE private file", "ok", _adv(MADV_POPULATE_WRITE, "private file")),
    ("POPULATE_READ beyond EOF", "EFAULT", _adv(MADV_POPULATE_READ, "beyond EOF")),
    ("GUARD_INSTALL shared file", "ok", _adv(MADV_GUARD_INSTALL, "shared file")),
    ("GUARD_INSTALL shared anon", "ok", _adv(MADV_GUARD_INSTALL, "shared anon")),
    ("GUARD_INSTALL PROT_NONE", "ok", _adv(MADV_GUARD_INSTALL, "PROT_NONE")),
    ("sealed RW DONTNEED", "ok", _adv(MADV_DONTNEED, "sealed RW")),
    ("sealed RW FREE", "ok", _adv(MADV_FREE, "sealed RW")),
    ("sealed RW GUARD_INSTALL", "ok", _adv(MADV_GUARD_INSTALL, "sealed RW")),
    ("sealed RO DONTNEED", "EPERM", _adv(MADV_DONTNEED, "sealed RO")),
    ("sealed RO DONTNEED_LOCKED", "EPERM", _adv(MADV_DONTNEED_LOCKED, "sealed RO")),
    ("sealed RO FREE", "EPERM", _adv(MADV_FREE, "sealed RO")),
    ("sealed RO REMOVE", "EPERM", _adv(MADV_REMOVE, "sealed RO")),
    ("sealed RO WIPEONFORK", "EPERM", _adv(MADV_WIPEONFORK, "sealed RO")),
    ("sealed RO DONTFORK", "EPERM", _adv(MADV_DONTFORK, "sealed RO")),
    ("sealed RO GUARD_INSTALL", "EPERM", _adv(MADV_GUARD_INSTALL, "sealed RO")),
    ("sealed RO PAGEOUT", "ok", _adv(MADV_PAGEOUT, "sealed RO")),
    ("sealed RO COLD", "ok", _adv(MADV_COLD, "sealed RO")),
    ("sealed RO GUARD_REMOVE", "ok", _adv(MADV_GUARD_REMOVE, "sealed RO")),
    ("sealed RO POPULATE_READ", "ok", _adv(MADV_POPULATE_READ, "sealed RO")),
    ("sealed RO HUGEPAGE", "ok", _adv(MADV_HUGEPAGE, "sealed RO")),
    ("sealed RO NORMAL", "ok", _adv(MADV_NORMAL, "sealed RO")),
    ("sealed RO advice 26", "EINVAL", _adv(26, "sealed RO")),
    ("sealed RO private file DONTNEED", "ok", _adv(MADV_DONTNEED, "sealed RO private file")),
    ("sealed RO shared file DONTNEED", "ok", _adv(MADV_DONTNEED, "sealed RO shared file")),
)

@pytest.mark.parametrize("fn, expected, sim_bug", MADVISE)
def test_madvise(ctx, fn, expected, sim_bug):
    check(ctx, fn, expected, sim_bug)


# --- mremap --------------------------------------------------------------------------------

def _mremap_new(c, old_len, new_len, flags, **kw):
    a = kw.get("a") or c.anon(4)
    return c.mm.mremap(a, old_len, new_len, flags, kw.get("new", 0))


def _two_vmas(c):
    """[0,4P) RW and [4P,8P) R: two VMAs that do not merge."""
    a = c.anon(4)
    c.mm.mmap(a + 4 * P, 4 * P, PROT_READ, ANON | MAP_FIXED_NOREPLACE)
    return a


def _shrink_two(c):
    a = _two_vmas(c)
    return c.mm.mremap(a, 8 * P, 4 * P, 0) == a, c.layout(a)


def _grow_in_hole(c):
    a = _two_vmas(c)
    c.mm.munmap(a + 4 * P, P)
    return c.mm.mremap(a, 4 * P, 5 * P, 0) == a, c.layout(a)


def _dontunmap_locked(c):
    a = c.anon(4)
    c.mm.mlock(a, 4 * P)
    n = c.mm.mremap(a, 4 * P, 4 * P, MAYMOVE | DONTUNMAP | FIXED, a + GiB)
    return n == a + GiB, c.vmflags(a), c.vmflags(n)


def _locked_grows(c):
    a = c.anon(4)
    c.mm.mmap(a + 4 * P, P, PROT_READ, ANON | MAP_FIXED_NOREPLACE)
    c.mm.mlock(a, 4 * P)
    before = c.vmlck()
    n = c.mm.mremap(a, 4 * P, 8 * P, MAYMOVE)
    return n != a, c.vmlck() - before, c.vmflags(n)


MREMAP = rows(
    ("flags 8", "EINVAL", lambda c: _mremap_new(c, 4 * P, 4 * P, 8)),
    ("unaligned", "EINVAL", lambda c: c.mm.mremap(c.anon() + 1, P, P, 0)),
    ("old_len 0 private, MAYMOVE", "EINVAL", lambda c: _mremap_new(c, 0, 4 * P, MAYMOVE)),
    ("old_len 0 private", "EINVAL", lambda c: _mremap_new(c, 0, 4 * P, 0)),
    ("new_len 0", "EINVAL", lambda c: _mremap_new(c, 4 * P, 0, MAYMOVE)),
    ("FIXED without MAYMOVE", "EINVAL",
     lambda c: _mremap_new(c, 4 * P, 8 * P, FIXED, new=c.slot())),
    ("DONTUNMAP without MAYMOVE", "EINVAL", lambda c: _mremap_new(c, 4 * P, 4 * P, DONTUNMAP)),
    ("DONTUNMAP sizes differ", "EINVAL",
     lambda c: _mremap_new(c, 4 * P, 8 * P, MAYMOVE | DONTUNMAP)),
    ("FIXED overlapping", "EINVAL",
     lambda c: c.mm.mremap(a := c.anon(), 4 * P, 4 * P, MAYMOVE | FIXED, a + 2 * P)),
    ("FIXED same address", "EINVAL",
     lambda c: c.mm.mremap(a := c.anon(), 4 * P, 4 * P, MAYMOVE | FIXED, a)),
    ("FIXED new unaligned", "EINVAL",
     lambda c: _mremap_new(c, 4 * P, 4 * P, MAYMOVE | FIXED, new=c.slot() + 1)),
    ("FIXED new past TASK_SIZE", "EINVAL",
     lambda c: _mremap_new(c, 4 * P, 4 * P, MAYMOVE | FIXED, new=TASK_SIZE - 2 * P),
     LIVE_REFUSES),
    ("MAYMOVE ignores new_address", "ok",
     lambda c: _mremap_new(c, 4 * P, 4 * P, MAYMOVE, new=c.slot())),
    ("unmapped grow", "EFAULT", lambda c: c.mm.mremap(c.slot(), P, 2 * P, MAYMOVE)),
    ("unmapped same size", "EFAULT", lambda c: c.mm.mremap(c.slot(), P, P, 0)),
    ("unmapped shrink", "EFAULT", lambda c: c.mm.mremap(c.slot(), 2 * P, P, 0)),
    ("old range past the VMA, same size", "ok", lambda c: _mremap_new(c, 8 * P, 8 * P, 0)),
    ("old range past the VMA, grow", "EFAULT", lambda c: _mremap_new(c, 8 * P, 16 * P, MAYMOVE)),
    ("grow blocked", "ENOMEM", lambda c: c.mm.mremap(_two_vmas(c), 4 * P, 8 * P, 0)),
    ("same size over two VMAs", "ok", lambda c: c.mm.mremap(_two_vmas(c), 8 * P, 8 * P, 0)),
    ("grow over two VMAs", "EFAULT", lambda c: c.mm.mremap(_two_vmas(c), 8 * P, 16 * P, MAYMOVE)),
    ("shrink over two VMAs", (True, [(0, 4, "rw-p")]), _shrink_two),
    ("move over two VMAs", "ok",
     lambda c: c.mm.mremap(_two_vmas(c), 8 * P, 8 * P, MAYMOVE | FIXED, c.slot())),
    ("FIXED shrink whose kept part spans two VMAs: nothing changes",
     ("EFAULT", [(0, 4, "rw-p"), (4, 8, "r--p")]),
     lambda c: (attempt(c.mm.mremap, a := _two_vmas(c), 16 * P, 6 * P, MAYMOVE | FIXED,
                        c.slot()), c.layout(a))),
    ("FIXED shrink whose kept part fits: the tail goes, over VMAs and a hole",
     ("ok", []),
     lambda c: (attempt(c.mm.mremap, a := _two_vmas(c), 16 * P, 2 * P, MAYMOVE | FIXED,
                        c.slot()), c.layout(a))),
    ("hole start", "EFAULT", lambda c: c.mm.mremap(c.holey() + 4 * P, P, P, 0)),
    ("same size over a hole", "ok", lambda c: c.mm.mremap(c.holey(), 9 * P, 9 * P, 0)),
    ("MAYMOVE same size over a hole", "ok",
     lambda c: c.mm.mremap(c.holey(), 9 * P, 9 * P, MAYMOVE)),
    ("grow into a 1-page hole", (True, [(0, 5, "rw-p"), (5, 8, "r--p")]), _grow_in_hole),
    ("shared anon old_len 0, MAYMOVE (duplicate)", "ok",
     lambda c: c.mm.mremap(c.anon(4, RW, SHANON), 0, 4 * P, MAYMOVE)),
    ("shared anon old_len 0", "ENOMEM", lambda c: c.mm.mremap(c.anon(4, RW, SHANON), 0, 4 * P, 0)),
    ("shared anon DONTUNMAP", "ok",
     lambda c: c.mm.mremap(c.anon(4, RW, SHANON), 4 * P, 4 * P, MAYMOVE | DONTUNMAP)),
    ("private file DONTUNMAP", "ok",
     lambda c: c.mm.mremap(c.map_file(c.file, 4, RW, MAP_PRIVATE), 4 * P, 4 * P,
                           MAYMOVE | DONTUNMAP)),
    ("private file old_len 0", "EINVAL",
     lambda c: c.mm.mremap(c.map_file(c.file, 4, RW, MAP_PRIVATE), 0, 4 * P, MAYMOVE)),
    ("DONTUNMAP FIXED", "ok", lambda c: _mremap_new(c, 4 * P, 4 * P, MAYMOVE | DONTUNMAP | FIXED,
                                                    new=c.slot())),
    ("DONTUNMAP of a locked VMA unlocks the old range",
     (True, "rd wr mr mw me ac", "rd wr mr mw me lo ac"), _dontunmap_locked),
    ("lengths rounded", "ok", lambda c: _mremap_new(c, 1, 1, 0)),
    ("huge new_len", "EINVAL", lambda c: _mremap_new(c, 2 * P, U64, MAYMOVE)),
    ("new_len 1<<47", "EINVAL", lambda c: _mremap_new(c, 2 * P, 1 << 47, MAYMOVE)),
    ("huge old_len", "EINVAL", lambda c: _mremap_new(c, U64, 2 * P, 0)),
    ("FIXED overlap, grow", "EINVAL",
     lambda c: c.mm.mremap(a := c.anon(), 2 * P, 4 * P, MAYMOVE | FIXED, a + P)),
    ("FIXED overlap, shrink", "EINVAL",
     lambda c: c.mm.mremap(a := c.anon(), 2 * P, P, MAYMOVE | FIXED, a + P)),
    ("locked VMA grows by moving", (True, 16, "rd wr mr mw me lo ac"), _locked_grows),
    ("shrink into a sealed VMA: the split stays", SPLIT_LEFT_BEHIND,
     _into_sealed(lambda c, a: c.mm.mremap(a, 8 * P, 2 * P, 0))),
    ("sealed same size", "EPERM", lambda c: c.mm.mremap(_sealed(c, 1), P, P, 0)),
    ("sealed grow", "EPERM", lambda c: c.mm.mremap(_sealed(c, 1), P, 2 * P, 0)),
    ("sealed move", "EPERM",
     lambda c: c.mm.mremap(_sealed(c, 1), P, P, MAYMOVE | FIXED, c.slot())),
    ("onto a sealed VMA", "EPERM",
     lambda c: c.mm.mremap(c.anon(1), P, P, MAYMOVE | FIXED, _sealed(c, 1))),
    ("unsealed part after a sealed one", "ok",
     lambda c: c.mm.mremap(_sealed_middle(c) + 4 * P, 4 * P, 8 * P, MAYMOVE)),
    ("64 GiB grow of an accounted VMA", "ENOMEM",
     lambda c: c.mm.mremap(c.anon(4), 4 * P, 64 * GiB, MAYMOVE)),
)


def _sealed_middle(c):
    a = c.anon(8)
    c.mm.mseal(a + 2 * P, 2 * P)
    return a


@pytest.mark.parametrize("fn, expected, sim_bug", MREMAP)
def test_mremap(ctx, fn, expected, sim_bug):
    check(ctx, fn, expected, sim_bug)


# --- mlock family --------------------------------------------------------------------------

def _lock_state(call, prot=RW, hole=True):
    """call(c, base) on a fresh slot (with the hole at page 4, or 4 pages of `prot`):
    (outcome, VmLck growth in kB, VmFlags of the first VMA)."""
    def run(c):
        a = c.holey(prot) if hole else c.anon(4, prot)
        before = c.vmlck()
        result = attempt(call, c, a)
        return result, c.vmlck() - before, c.vmflags(a)
    return run


def _guarded(c):
    a = c.anon()
    c.mm.madvise(a + P, P, MADV_GUARD_INSTALL)
    return a


def _mlockall_then_map(flags):
    def run(c):
        c.mm.mlockall(flags)
        try:
            return c.vmflags(c.anon(1))
        finally:
            c.mm.munlockall()
    return run


def _munlockall_clears(c):
    c.mm.mlockall(MCL_FUTURE)
    try:
        a = c.anon(1)
    finally:
        c.mm.munlockall()
    return c.vmflags(a)


MLOCK = rows(
    ("mlock2 flags 2", "EINVAL", lambda c: c.mm.mlock(c.anon(), P, 2)),
    ("mlock2 flags ~0", "EINVAL", lambda c: c.mm.mlock(c.anon(), P, U64)),
    ("unaligned addr rounds down, len up", ("ok", 8, "rd wr mr mw me lo ac"),
     _lock_state(lambda c, a: c.mm.mlock(a + 1, P, 0), hole=False)),
    ("len 0", "ok", lambda c: c.mm.mlock(c.anon(), 0)),
    ("unmapped len 0", "ok", lambda c: c.mm.mlock(c.slot(), 0)),
    ("over a hole: what is before it is locked", ("ENOMEM", 16, "rd wr mr mw me lo ac"),
     _lock_state(lambda c, a: c.mm.mlock(a, 9 * P))),
    ("munlock over a hole", "ENOMEM", lambda c: c.mm.munlock(c.holey(), 9 * P)),
    ("munlock over a hole: what is before it is unlocked", ("ENOMEM", 0, "rd wr mr mw me ac"),
     _lock_state(lambda c, a: (c.mm.mlock(a, 4 * P), c.mm.munlock(a, 9 * P)))),
    ("unmapped", "ENOMEM", lambda c: c.mm.mlock(c.slot(), P)),
    ("munlock unmapped", "ENOMEM", lambda c: c.mm.munlock(c.slot(), P)),
    ("len ~0 rounds to 0", "ok", lambda c: c.mm.mlock(c.anon(), U64)),
    ("ONFAULT", ("ok", 16, "rd wr mr mw me lo lf ac"),
     _lock_state(lambda c, a: c.mm.mlock(a, 4 * P, MLOCK_ONFAULT), hole=False)),
    ("munlock", ("ok", 0, "rd wr mr mw me ac"),
     _lock_state(lambda c, a: (c.mm.mlock(a, 4 * P), c.mm.munlock(a, 4 * P)), hole=False)),
    ("PROT_NONE: ENOMEM, yet locked", ("ENOMEM", 16, "mr mw me lo"),
     _lock_state(lambda c, a: c.mm.mlock(a, 4 * P), PROT_NONE, hole=False)),
    ("over a guard", "ENOMEM", lambda c: c.mm.mlock(_guarded(c), 4 * P)),
    ("sealed", "ok", lambda c: c.mm.mlock(_sealed(c), 4 * P)),
    ("munlock sealed", "ok", lambda c: c.mm.munlock(_sealed(c), 4 * P)),
    ("mlockall 0", "EINVAL", lambda c: c.mm.mlockall(0)),
    ("mlockall ONFAULT alone", "EINVAL", lambda c: c.mm.mlockall(MCL_ONFAULT)),
    ("mlockall 8", "EINVAL", lambda c: c.mm.mlockall(8)),
    ("mlockall FUTURE|8", "EINVAL", lambda c: c.mm.mlockall(MCL_FUTURE | 8)),
    ("mlockall FUTURE", "rd wr mr mw me lo ac", _mlockall_then_map(MCL_FUTURE)),
    ("mlockall FUTURE|ONFAULT", "rd wr mr mw me lo lf ac",
     _mlockall_then_map(MCL_FUTURE | MCL_ONFAULT)),
    ("munlockall clears", "rd wr mr mw me ac", _munlockall_clears),
)


@pytest.mark.parametrize("fn, expected, sim_bug", MLOCK)
def test_mlock(ctx, fn, expected, sim_bug):
    if isinstance(expected, str) and " " in expected:      # a VmFlags line: a value
        check(ctx, lambda c: (fn(c),), (expected,), sim_bug)
    else:
        check(ctx, fn, expected, sim_bug)


# --- mseal ---------------------------------------------------------------------------------

def _mseal_hole(c):
    a = c.holey()
    return attempt(c.mm.mseal, a, 9 * P), c.vmflags(a)


def _mseal_rounded(c):
    a = c.anon(4)
    return attempt(c.mm.mseal, a, 1), c.layout(a), c.vmflags(a)


MSEAL = rows(
    ("unaligned", "EINVAL", lambda c: c.mm.mseal(c.anon() + 1, P)),
    ("flags 1", "EINVAL", lambda c: c.mm.mseal(c.anon(), P, 1)),
    ("len 0", "ok", lambda c: c.mm.mseal(c.anon(), 0)),
    ("unmapped len 0", "ok", lambda c: c.mm.mseal(c.slot(), 0)),
    ("over a hole: nothing sealed", ("ENOMEM", "rd wr mr mw me ac"), _mseal_hole),
    ("unmapped", "ENOMEM", lambda c: c.mm.mseal(c.slot(), P)),
    ("len ~0", "EINVAL", lambda c: c.mm.mseal(c.anon(), U64)),
    ("len -4096", "EINVAL", lambda c: c.mm.mseal(c.anon(), -4096)),
    ("1 byte seals a page and splits", ("ok", [(0, 1, "rw-p"), (1, 4, "rw-p")],
                                        "rd wr mr mw me ac sl"), _mseal_rounded),
    ("sealing again", "ok", lambda c: c.mm.mseal(_sealed(c), 4 * P)),
    ("munmap of the unsealed rest", "ok", lambda c: c.mm.munmap(_sealed(c, 1) + P, 3 * P)),
    ("set_anon_name on sealed", "EINVAL", lambda c: c.mm.set_anon_name(_sealed(c), P, "x")),
)


@pytest.mark.parametrize("fn, expected, sim_bug", MSEAL)
def test_mseal(ctx, fn, expected, sim_bug):
    check(ctx, fn, expected, sim_bug)


# --- brk -----------------------------------------------------------------------------------

def test_brk(env):
    """brk never fails with an errno: it returns the new break, or the old one. Growth
    needs one free page beyond the new end; below the start it is refused; the break may
    be unaligned; a huge or past-TASK_SIZE break is refused; so is one past RAM (the heap
    is accounted). A fresh process: other rows map things the heap could run into."""
    mm = env.mm
    cur = mm.brk(0)
    assert cur == mm.brk(0)
    start = mm.brk(cur + 1) - 1                       # from here on, a heap VMA exists
    got = [mm.brk(cur + 1) - start]
    got.append(mm.brk(start + 3 * P + 5) - start)
    got.append(mm.brk(start + P) - start)
    got.append(mm.brk(U64) - start)
    got.append(mm.brk(TASK_SIZE) - start)
    got.append(mm.brk(start + 64 * GiB) - start)      # more than RAM
    got.append(mm.brk(start + 16 * GiB) - start)      # less than RAM: fine
    got.append(mm.brk(start + P) - start)
    top = (start + P + P - 1) & ~(P - 1)
    blocker = mm.mmap(top + 8 * P, P, RW, ANON | MAP_FIXED_NOREPLACE)
    got.append(mm.brk(top + 8 * P) - start)           # the page above must be free
    got.append(mm.brk(top + 7 * P) - start)
    mm.munmap(blocker, P)
    got.append(mm.brk(start + P) - start)
    assert got == [1, 3 * P + 5, P, P, P, P, 16 * GiB, P, P, top + 7 * P - start, P]


# --- set_anon_name -------------------------------------------------------------------------

ANON_NAME = rows(
    ("plain name", "EINVAL", lambda c: c.mm.set_anon_name(c.anon(), 4 * P, "ok name")),
    ("bad character", "EINVAL", lambda c: c.mm.set_anon_name(c.anon(), 4 * P, "a[b")),
    ("79 characters", "EINVAL", lambda c: c.mm.set_anon_name(c.anon(), 4 * P, "a" * 79)),
    ("80 characters", "EINVAL", lambda c: c.mm.set_anon_name(c.anon(), 4 * P, "a" * 80)),
    ("empty", "EINVAL", lambda c: c.mm.set_anon_name(c.anon(), 4 * P, "")),
    ("clear (None)", "EINVAL", lambda c: c.mm.set_anon_name(c.anon(), 4 * P, None)),
    ("unaligned", "EINVAL", lambda c: c.mm.set_anon_name(c.anon() + 1, P, "x")),
    ("len 0", "EINVAL", lambda c: c.mm.set_anon_name(c.anon(), 0, "x")),
    ("len 0 unmapped", "EINVAL", lambda c: c.mm.set_anon_name(c.slot(), 0, "x")),
    ("over a hole", "EINVAL", lambda c: c.mm.set_anon_name(c.holey(), 9 * P, "x")),
    ("unmapped", "EINVAL", lambda c: c.mm.set_anon_name(c.slot(), P, "x")),
    ("private file", "EINVAL",
     lambda c: c.mm.set_anon_name(c.map_file(c.file, 4, RW, MAP_PRIVATE), P, "x")),
    ("shared anon", "EINVAL", lambda c: c.mm.set_anon_name(c.anon(4, RW, SHANON), P, "x")),
)


@pytest.mark.host_profile("anon_vma_name")
@pytest.mark.parametrize("fn, expected, sim_bug", ANON_NAME)
def test_set_anon_name_without_config(ctx, fn, expected, sim_bug):
    """The reference profile has no CONFIG_ANON_VMA_NAME: every call is EINVAL."""
    check(ctx, fn, expected, sim_bug)


def test_set_anon_name_with_config():
    """The simulator with CONFIG_ANON_VMA_NAME on (as the android profile has it), checked against the
    rules of mm/madvise.c (no host here to compare with): name length < 80 and printable
    without \\ ` $ [ ]; unaligned EINVAL; len 0 is 0; a hole ENOMEM after naming the mapped
    parts; file mappings EBADF; shared anon is named [anon_shmem:...]."""
    system = ptengine.System(anon_vma_name=True)
    mm = system.spawn()
    a = mm.mmap(FAR, 9 * P, RW, ANON | MAP_FIXED_NOREPLACE)
    mm.munmap(a + 4 * P, P)
    f = system.create_file("named.bin", 4 * P)
    fm = mm.mmap(0, 4 * P, RW, MAP_PRIVATE, f)
    sh = mm.mmap(0, 4 * P, RW, SHANON)
    got = [attempt(mm.set_anon_name, a, 2 * P, "ok name"),
           attempt(mm.set_anon_name, a, P, "a[b"),
           attempt(mm.set_anon_name, a, P, "a\tb"),
           attempt(mm.set_anon_name, a, P, "a" * 79),
           attempt(mm.set_anon_name, a, P, "a" * 80),
           attempt(mm.set_anon_name, a + 1, P, "x"),
           attempt(mm.set_anon_name, a, 0, "x"),
           attempt(mm.set_anon_name, FAR + 4 * GiB, P, "x"),
           attempt(mm.set_anon_name, a, 9 * P, "holey"),
           attempt(mm.set_anon_name, fm, P, "x"),
           attempt(mm.set_anon_name, sh, P, "shm")]
    assert got == ["ok", "EINVAL", "EINVAL", "ok", "EINVAL", "EINVAL", "ok", "ENOMEM",
                   "ENOMEM", "EBADF", "ok"]
    names = {v.start: v.name for v in mm.vmas()}
    assert names[a] == "[anon:holey]" and names[a + 5 * P] == "[anon:holey]"
    maps = mm.maps()
    assert "[anon:holey]" in maps and "[anon_shmem:shm]" in maps
    assert attempt(mm.set_anon_name, a, 9 * P, None) == "ENOMEM"      # cleared, still ENOMEM
    assert "[anon:" not in mm.maps()
    b = mm.mmap(FAR + 8 * GiB, 4 * P, RW, ANON | MAP_FIXED_NOREPLACE)
    mm.mseal(b, 4 * P)                                   # naming is not sealed off
    assert attempt(mm.set_anon_name, b, P, "sealed") == "ok"


# --- process_madvise -----------------------------------------------------------------------

def _pm(iovs, advice=MADV_DONTNEED):
    """process_madvise on iovecs (page, npages) relative to a fresh holey slot (hole at
    page 4); page "U" is the slot's base + 1 (unaligned), "L" a locked page elsewhere.
    Returns the bytes advised or the errno name."""
    def run(c):
        a = c.holey()
        lk = c.anon(1)
        c.mm.mlock(lk, P)
        where = {"U": a + 1, "L": lk}
        vec = [(where[page] if page in where else a + page * P, n * P) for page, n in iovs]
        try:
            return c.mm.process_madvise(vec, advice)
        except OSError as e:
            return ename(e.errno)
    return run


PROCESS_MADVISE = rows(
    ("flags 1", "EINVAL", lambda c: c.mm.process_madvise([(c.anon(), P)], MADV_DONTNEED, 1)),
    ("1025 iovecs", "EINVAL",
     lambda c: c.mm.process_madvise([(c.anon(1), P)] * 1025, MADV_DONTNEED)),
    ("1024 iovecs", 1024 * P, lambda c: c.mm.process_madvise([(c.anon(1), P)] * 1024,
                                                             MADV_DONTNEED)),
    ("no iovecs", 0, lambda c: c.mm.process_madvise([], MADV_DONTNEED)),
    ("advice 99", "EINVAL", lambda c: c.mm.process_madvise([(c.anon(), P)], 99)),
    ("HUGEPAGE", P, lambda c: c.mm.process_madvise([(c.anon(), P)], MADV_HUGEPAGE)),
    ("GUARD_INSTALL", P, lambda c: c.mm.process_madvise([(c.anon(), P)], MADV_GUARD_INSTALL)),
    ("zero-length iovec skipped", 3 * P, _pm([(0, 2), (1, 0), (5, 1)])),
    ("stops before the failing iovec", 2 * P, _pm([(0, 2), (2, 4), (5, 1)])),
    ("first iovec fails", "ENOMEM", _pm([(2, 4)])),
    ("unaligned first", "EINVAL", _pm([("U", 1), (0, 1)])),
    ("unaligned second", P, _pm([(0, 1), ("U", 1)])),
    ("unmapped", "ENOMEM", lambda c: c.mm.process_madvise([(c.slot(), P)], MADV_DONTNEED)),
    ("locked second (GUARD_INSTALL)", P, _pm([(0, 1), ("L", 1)], MADV_GUARD_INSTALL)),
    ("locked first (GUARD_INSTALL)", "EINVAL", _pm([("L", 1)], MADV_GUARD_INSTALL)),
)


@pytest.mark.parametrize("fn, expected, sim_bug", PROCESS_MADVISE)
def test_process_madvise(ctx, fn, expected, sim_bug):
    def value(c):
        try:
            return fn(c)
        except OSError as e:
            return ename(e.errno)
    check(ctx, lambda c: (value(c),), (expected,), sim_bug)


# --- wrong Python types --------------------------------------------------------------------

TYPE_ERRORS = [
    ("mmap addr str", lambda mm: mm.mmap("0", P, RW, ANON)),
    ("mmap length float", lambda mm: mm.mmap(0, 4096.0, RW, ANON)),
    ("mmap prot None", lambda mm: mm.mmap(0, P, None, ANON)),
    ("mmap flags str", lambda mm: mm.mmap(0, P, RW, "private")),
    ("mmap fd int", lambda mm: mm.mmap(0, P, RW, MAP_PRIVATE, 3)),
    ("mmap offset float", lambda mm: mm.mmap(0, P, RW, ANON, None, 0.0)),
    ("munmap addr float", lambda mm: mm.munmap(1.0, P)),
    ("munmap length str", lambda mm: mm.munmap(FAR, "4096")),
    ("mprotect prot float", lambda mm: mm.mprotect(FAR, P, 1.0)),
    ("madvise advice str", lambda mm: mm.madvise(FAR, P, "dontneed")),
    ("madvise length None", lambda mm: mm.madvise(FAR, None, MADV_DONTNEED)),
    ("mremap new_size float", lambda mm: mm.mremap(FAR, P, 2.0 * P)),
    ("mremap flags str", lambda mm: mm.mremap(FAR, P, P, "x")),
    ("mlock addr list", lambda mm: mm.mlock([FAR], P)),
    ("mlock flags float", lambda mm: mm.mlock(FAR, P, 1.0)),
    ("munlock length float", lambda mm: mm.munlock(FAR, 1.5)),
    ("mlockall str", lambda mm: mm.mlockall("current")),
    ("mseal flags float", lambda mm: mm.mseal(FAR, P, 0.0)),
    ("brk str", lambda mm: mm.brk("0")),
    ("set_anon_name name int", lambda mm: mm.set_anon_name(FAR, P, 5)),
    ("set_anon_name addr str", lambda mm: mm.set_anon_name("x", P, "x")),
    ("process_madvise iovec of str", lambda mm: mm.process_madvise([("a", P)], MADV_DONTNEED)),
    ("process_madvise advice float", lambda mm: mm.process_madvise([(FAR, P)], 4.0)),
    ("process_madvise not pairs", lambda mm: mm.process_madvise([FAR], MADV_DONTNEED)),
]


@pytest.mark.parametrize("call", [c for _, c in TYPE_ERRORS], ids=[n for n, _ in TYPE_ERRORS])
def test_wrong_types(ctx, call):
    with pytest.raises(TypeError):
        call(ctx.mm)
