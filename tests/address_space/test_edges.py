"""Arguments at the ends of the address space and of the C types, for every range call.

A systematic table (issue 11, item 3): for each call and each argument, the values
{0, 1, PAGE_SIZE-1, TASK_SIZE-PAGE_SIZE, TASK_SIZE, TASK_SIZE+1, 1<<47, 1<<63,
2**64-PAGE_SIZE, 2**64-1}, plus values relative to the mapping the call acts on (a range
that ends exactly at TASK_SIZE, one past it, one that wraps to exactly 2**64, one that wraps
past it) and values that do not fit the argument's C type at all (-1 wraps as a C cast
would; 2**64 and beyond raise OverflowError on both backends, as Python's os functions do).

Each row runs on both backends in a fresh process with four pages mapped at a fresh 1 GiB
aligned address `a` (and a second free slot `b` for moves); its outcome - the return
value (relative to `a` or `b` where it is an address), the errno, or the Python exception's
type - and the layout of both slots afterwards must be the same on both. A row the live
backend refuses (its range would cover the live server's own mappings) is skipped there;
such ranges are asked of the kernel in a throwaway child process below instead.
"""
import ctypes
import errno
import os
import signal

import pytest

from ptengine.constants import (MADV_COLD, MADV_DONTNEED, MADV_GUARD_INSTALL, MADV_PAGEOUT,
                                MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_HUGETLB, MAP_NORESERVE, MAP_PRIVATE,
                                MAP_SHARED, MLOCK_ONFAULT, MREMAP_DONTUNMAP, MREMAP_FIXED,
                                MREMAP_MAYMOVE, PAGE_IS_SOFT_DIRTY, PM_SCAN_CATEGORIES, PROT_NONE, PROT_READ, TASK_SIZE)
from ptengine.live import LiveRangeError
from ptengine.live.procfs import parse as parse_smaps

from .conftest import ANON, BACKENDS, FAR, GiB, P, RW, make_system

U64 = (1 << 64) - 1
MAYMOVE, FIXED, DONTUNMAP = MREMAP_MAYMOVE, MREMAP_FIXED, MREMAP_DONTUNMAP
# The absolute values every argument is tried with.
EDGES = (0, 1, P - 1, TASK_SIZE - P, TASK_SIZE, TASK_SIZE + 1, 1 << 47, 1 << 63, U64 + 1 - P,
         U64)
# Values that do not fit an unsigned long: -1 wraps (as the C cast does), the rest raise.
MISFITS = (-1, -P, U64 + 1, U64 + P, -(1 << 63) - 1)
SCAN_BITS = PM_SCAN_CATEGORIES & ~PAGE_IS_SOFT_DIRTY


def lengths(a):
    """Lengths from `a`: the absolute edges, and ends at TASK_SIZE and at 2**64."""
    return EDGES + MISFITS + (4 * P, TASK_SIZE - a, TASK_SIZE - a + P, TASK_SIZE - a - P + 1,
                              U64 + 1 - a, U64 + 1 - a - P, U64 + 1 - a + P, U64 - a)


def addresses(a):
    return EDGES + MISFITS + (a, a + 1, a + P)


class Slots:
    """One fresh process: `a` has four pages mapped read-write, `b` is free."""

    def __init__(self, system):
        self.mm = system.spawn()
        self.a, self.b = FAR, FAR + GiB
        assert self.mm.mmap(self.a, 4 * P, RW, ANON | MAP_FIXED_NOREPLACE) == self.a
        self.mm.touch(self.a, 4 * P, write=True)

    def rel(self, value):
        """A returned address as a place a reader can compare across backends (None, what
        the simulator's calls without a value return, is the syscall's 0)."""
        if value is None:
            return 0
        if not isinstance(value, int) or value == 0:
            return value
        for name, base in (("a", self.a), ("b", self.b)):
            if base <= value < base + GiB:
                return f"{name}+{(value - base) // P}P"
        return "elsewhere"

    def layout(self):
        """The VMAs of both slots (pages from a, perms, VmFlags, Rss kB), and VmLck."""
        ends = (self.a, self.b + GiB)
        return ([((v.start - self.a) // P, (v.end - self.a) // P, v.perms, " ".join(v.vmflags),
                  v.stats.get("Rss"))
                 for v in parse_smaps(self.mm.smaps()) if v.start < ends[1] and ends[0] < v.end],
                self.mm.status()["VmLck"])


def outcome(slots, call):
    try:
        value = call(slots.mm, slots.a, slots.b)
    except OSError as e:
        result = errno.errorcode.get(e.errno, e.errno)
    except (OverflowError, TypeError) as e:
        result = type(e).__name__
    else:
        result = ("ok", slots.rel(value))
    return result, slots.layout()


def table():
    """(id, call(mm, a, b)) rows: every call x argument x value."""
    a, rows = FAR, []

    def add(label, values, make):
        for v in values:
            rows.append((f"{label}={v:#x}" if v >= 0 else f"{label}=-{-v:#x}", make(v)))

    # mmap: the hint, the fixed address, the length, the offset, prot and flags.
    add("mmap hint", addresses(a), lambda v: lambda mm, a, b: mm.mmap(v, 4 * P, RW, ANON))
    add("mmap fixed", addresses(a) + (U64 + 1 - errno.ENOMEM, U64 + 1 - errno.EEXIST,
                                      U64 + 1 - errno.EINVAL, U64 + 1 - 4095),
        lambda v: lambda mm, a, b: mm.mmap(v, 4 * P, RW, ANON | MAP_FIXED_NOREPLACE))
    add("mmap len", lengths(a),
        lambda v: lambda mm, a, b: mm.mmap(b, v, PROT_NONE,
                                           ANON | MAP_FIXED_NOREPLACE | MAP_NORESERVE))
    add("mmap len hint", lengths(a),
        lambda v: lambda mm, a, b: mm.mmap(0, v, PROT_NONE, ANON | MAP_NORESERVE))
    add("mmap offset", lengths(a),
        lambda v: lambda mm, a, b: mm.mmap(b, 4 * P, RW, ANON | MAP_FIXED_NOREPLACE, None, v))
    add("mmap prot", EDGES + MISFITS,
        lambda v: lambda mm, a, b: mm.mmap(b, 4 * P, v, ANON | MAP_FIXED_NOREPLACE))
    add("mmap flags", EDGES + MISFITS + (ANON | (1 << 32), ANON | (1 << 63))
        + tuple(ANON | MAP_HUGETLB | lg << 26 for lg in (0, 12, 21, 30, 31, 63))
        + tuple(MAP_SHARED | ANON & ~MAP_PRIVATE | MAP_HUGETLB | lg << 26 for lg in (16, 21)),
        lambda v: lambda mm, a, b: mm.mmap(b, 4 * P, RW, v | MAP_FIXED_NOREPLACE))
    # munmap, mprotect, mlock, munlock, mseal: the address and the length.
    ranged = {
        "munmap": lambda mm, x, n: mm.munmap(x, n),
        "mprotect": lambda mm, x, n: mm.mprotect(x, n, PROT_READ),
        "mlock": lambda mm, x, n: mm.mlock(x, n),
        "mlock2": lambda mm, x, n: mm.mlock(x, n, MLOCK_ONFAULT),
        "munlock": lambda mm, x, n: mm.munlock(x, n),
        "mseal": lambda mm, x, n: mm.mseal(x, n),
        "madvise DONTNEED": lambda mm, x, n: mm.madvise(x, n, MADV_DONTNEED),
        "madvise GUARD_INSTALL": lambda mm, x, n: mm.madvise(x, n, MADV_GUARD_INSTALL),
        "madvise COLD": lambda mm, x, n: mm.madvise(x, n, MADV_COLD),
        "install_poison": lambda mm, x, n: mm.install_poison(x, n),
    }
    for name, call in ranged.items():
        add(f"{name} addr", addresses(a), lambda v, call=call: lambda mm, a, b: call(mm, v, 4 * P))
        add(f"{name} len", lengths(a), lambda v, call=call: lambda mm, a, b: call(mm, a, v))
    # The int and unsigned long flag arguments.
    add("mprotect prot", EDGES + MISFITS + (PROT_READ | (1 << 32),),
        lambda v: lambda mm, a, b: mm.mprotect(a, 4 * P, v))
    add("madvise advice", EDGES + MISFITS + (MADV_DONTNEED | (1 << 32), MADV_COLD - (1 << 32),
                                             (1 << 32) - 1),
        lambda v: lambda mm, a, b: mm.madvise(a, 4 * P, v))
    # process_madvise(2): int behavior, unsigned int flags.
    add("process_madvise advice", EDGES + MISFITS + (MADV_DONTNEED | (1 << 32),
                                                     MADV_COLD - (1 << 32), (1 << 32) - 1),
        lambda v: lambda mm, a, b: mm.process_madvise([(a, 4 * P)], v))
    add("process_madvise flags", EDGES + MISFITS + (1 << 32,),
        lambda v: lambda mm, a, b: mm.process_madvise([(a, 4 * P)], MADV_DONTNEED, v))
    add("mlock2 flags", EDGES + MISFITS + (MLOCK_ONFAULT | (1 << 32), 1 << 32),
        lambda v: lambda mm, a, b: mm.mlock(a, 4 * P, v))
    add("mseal flags", EDGES + MISFITS + (1 << 32,),
        lambda v: lambda mm, a, b: mm.mseal(a, 4 * P, v))
    # mremap: every argument, under every flag combination that reads it.
    combos = {"0": 0, "MAYMOVE": MAYMOVE, "FIXED": MAYMOVE | FIXED,
              "DONTUNMAP": MAYMOVE | DONTUNMAP, "FIXED|DONTUNMAP": MAYMOVE | FIXED | DONTUNMAP}
    for cname, fl in combos.items():
        moves = fl & (FIXED | DONTUNMAP)
        add(f"mremap[{cname}] old_address", addresses(a),
            lambda v, fl=fl: lambda mm, a, b: mm.mremap(v, 4 * P, 4 * P, fl, b))
        add(f"mremap[{cname}] old_size", lengths(a),
            lambda v, fl=fl: lambda mm, a, b: mm.mremap(a, v, 4 * P if not fl & DONTUNMAP else v,
                                                        fl, b))
        if not fl & DONTUNMAP:
            add(f"mremap[{cname}] old_size, new 8P", lengths(a),
                lambda v, fl=fl: lambda mm, a, b: mm.mremap(a, v, 8 * P, fl, b))
            add(f"mremap[{cname}] new_size", lengths(a),
                lambda v, fl=fl: lambda mm, a, b: mm.mremap(a, 4 * P, v, fl, b))
            add(f"mremap[{cname}] new_size from 2P", lengths(a),
                lambda v, fl=fl: lambda mm, a, b: mm.mremap(a, 2 * P, v, fl, b))
        if moves:
            add(f"mremap[{cname}] new_address", addresses(a) + (TASK_SIZE - 4 * P,),
                lambda v, fl=fl: lambda mm, a, b: mm.mremap(a, 4 * P, 4 * P, fl, v))
    # A FIXED shrink whose old size wraps past 2**64 passes the overlap test, so its
    # destination may cover the old address: EFAULT once that is unmapped, before the
    # tail is cut. (Without the wrap it overlaps: EINVAL.)
    def covering(old_size):
        def call(mm, a, b):
            mm.mmap(b, 64 * P, RW, ANON | MAP_FIXED)
            return mm.mremap(b + 32 * P, old_size(b + 32 * P), 31 * P, MAYMOVE | FIXED,
                             b + 8 * P)
        return call
    # old_size ~0 rounds up to 0: a duplicate of a shared mapping, which keeps its lock.
    def duplicate(prot, lock_flags):
        def call(mm, a, b):
            mm.mmap(b, 8 * P, prot, MAP_SHARED | ANON & ~MAP_PRIVATE | MAP_FIXED)
            try:
                mm.mlock(b, 8 * P, lock_flags)
            except OSError:
                pass                   # ENOMEM for PROT_NONE, with the VMA locked anyway
            return mm.mremap(b + 2 * P, U64, 4 * P, MAYMOVE | FIXED, b + 512 * P)
        return call
    rows += [(f"mremap old_size ~0 duplicates a locked shared VMA, prot {prot} flags {lf}",
              duplicate(prot, lf)) for prot in (PROT_NONE, PROT_READ) for lf in (0, MLOCK_ONFAULT)]
    rows += [("mremap[FIXED] shrink, destination covers the old address, old_size to 2**64",
              covering(lambda x: U64 + 1 - x)),
             ("mremap[FIXED] shrink, destination covers the old address, old_size past 2**64",
              covering(lambda x: U64 + 1 - x + 4 * P)),
             ("mremap[FIXED] shrink, destination covers the old address, old_size 40P",
              covering(lambda x: 40 * P))]
    add("mremap flags", EDGES + MISFITS + (MAYMOVE | (1 << 32),),
        lambda v: lambda mm, a, b: mm.mremap(a, 4 * P, 8 * P, v, b))
    # pagemap(addr, size) and pagemap_scan(start, end): the file ends at TASK_SIZE.
    top = TASK_SIZE - 4 * P
    add("pagemap addr", addresses(a), lambda v: lambda mm, a, b: _pagemap(mm, v, 4 * P))
    add("pagemap size near the top", lengths(top),
        lambda v: lambda mm, a, b: len(mm.pagemap(top, v)))
    add("pagemap_scan start", addresses(a),
        lambda v: lambda mm, a, b: _scan(mm, v, a + 4 * P))
    add("pagemap_scan end", addresses(a) + (a + 4 * P, a + 4 * P + 1),
        lambda v: lambda mm, a, b: _scan(mm, a, v))
    add("pagemap_scan max_pages", EDGES + MISFITS,
        lambda v: lambda mm, a, b: _scan(mm, a, a + 4 * P, max_pages=v))
    return rows


def _pagemap(mm, addr, size):
    """How many entries, and the present ones inside the slots (as page numbers of the
    result; the live server's own pages are elsewhere)."""
    pm, first = mm.pagemap(addr, size), (addr & U64) & -P
    return len(pm), [i for i, e in enumerate(pm.tolist())
                     if e >> 63 and FAR <= first + i * P < FAR + 2 * GiB]


def _scan(mm, start, end, **kw):
    """The regions inside the two slots (the live server has its own elsewhere), without
    PAGE_IS_SOFT_DIRTY (this host is built without CONFIG_MEM_SOFT_DIRTY)."""
    return [(s - FAR, e - FAR, c)
            for s, e, c in mm.pagemap_scan(start, end, return_mask=SCAN_BITS, **kw)
            if FAR <= s and e <= FAR + 2 * GiB]


ROWS = table()


@pytest.fixture(scope="module")
def systems():
    out = {name: make_system(name) for name in BACKENDS}
    yield out
    out["kernel"].close()


@pytest.mark.parametrize("call", [c for _, c in ROWS], ids=[n for n, _ in ROWS])
def test_edge_argument(systems, call):
    """The simulator goes first: whatever the kernel side does, its call must end in a
    result, an errno or OverflowError, and leave every invariant intact."""
    results = {}
    for name in ("ptengine", "kernel"):
        slots = Slots(systems[name])
        try:
            results[name] = outcome(slots, call)
        except LiveRangeError:
            pytest.skip("the live backend refuses a range over its server's own mappings")
        finally:
            if name == "kernel":
                slots.mm.close()
            else:
                slots.mm.check()
                slots.mm.exit()
    assert results["ptengine"] == results["kernel"]


# --- ranges the live backend cannot be given --------------------------------------------

SYS_MMAP, SYS_MREMAP = 9, 25
HIGH = 0x700000000000          # above it: this process's libraries and stack (x86-64)


def _raw_syscall_in_child(nr, *args, setup=()):
    """The errno (0 on success) of one raw syscall made by a forked child of this test
    process, after the `setup` syscalls. A call that unmapped the child's own code or stack
    would kill it: that reads as the signal's name."""
    import platform
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        pytest.skip("raw x86-64 Linux syscall numbers")
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            for call in setup:
                libc.syscall(*(ctypes.c_ulong(x) for x in call))
            ret = libc.syscall(ctypes.c_long(nr), *(ctypes.c_ulong(x) for x in args))
            os.write(w, str(ctypes.get_errno() if ret == -1 else 0).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read()
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return signal.Signals(os.WTERMSIG(status)).name
    return errno.errorcode.get(int(out), int(out)) if int(out) else "ok"


@pytest.mark.parametrize("old_size, expected", [
    pytest.param(1 << 46, "EINVAL", id="issue 11: 1<<46 from a high mapping"),
    pytest.param(TASK_SIZE - HIGH + P, "EINVAL", id="one page past TASK_SIZE"),
])
def test_mremap_shrink_past_task_size(old_size, expected):
    """mremap(a, old_size, PAGE_SIZE, 0) where a + old_size passes TASK_SIZE: shrink_vma()
    munmaps the tail as munmap would, which refuses a range past TASK_SIZE (EINVAL), and
    nothing above `a` goes. The live server's stack lies in that range, so the kernel is
    asked by a throwaway child (which would die if the kernel did unmap its stack)."""
    setup = [(SYS_MMAP, HIGH, 4 * P, RW, ANON | MAP_FIXED_NOREPLACE, U64, 0)]
    assert _raw_syscall_in_child(SYS_MREMAP, HIGH, old_size, P, 0, setup=setup) == expected
    mm = make_system("ptengine").spawn()
    mm.mmap(HIGH, 4 * P, RW, ANON | MAP_FIXED_NOREPLACE)
    above = mm.mmap(TASK_SIZE - 64 * P, 16 * P, RW, ANON | MAP_FIXED_NOREPLACE)
    before = [(v.start, v.end) for v in mm.vmas()]
    with pytest.raises(OSError) as e:
        mm.mremap(HIGH, old_size, P, 0)
    assert errno.errorcode[e.value.errno] == expected
    assert [(v.start, v.end) for v in mm.vmas()] == before and mm.find_vma(above)
