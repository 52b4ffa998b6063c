"""--rewrite guard|guard_batched: PROT_NONE idioms in a log replayed as guard markers.

One synthetic log holds the three idioms at fixed addresses (MAP_FIXED, so the picture
is the same on both backends):

    stacks   3 glibc <= 2.41 thread stacks: mmap PROT_NONE, mprotect all but the low
             guard page read-write                 [g|s s s][g|s s s][g|s s s]
    reserve  64 pages PROT_NONE, opened 4 + 4 pages read-write
    block    16 pages read-write, page 8 made PROT_NONE (a guard between two halves)

As recorded that is 6 + 2 + 3 VMAs; with markers each idiom is one VMA. The kernel is
asked what glibc 2.42's way (mmap read-write + MADV_GUARD_INSTALL) leaves for the stacks.
"""
import signal

import pytest

import ptengine as pt
from ptengine.trace import maps, strace
from ptengine.trace.replay import replay

P = pt.PAGE_SIZE
BASE = 0x100000000000
STACK = 4 * P
START = "7ffffffde000-7ffffffff000 rw-p 00000000 00:00 0                          [stack]\n"
RES, BLOCK = BASE + 0x100000, BASE + 0x200000


def _log():
    lines = ['100 execve("/bin/prog", ["prog"], ["A=1"]) = 0']
    for k in range(3):
        s = BASE + k * STACK
        lines.append(f"100 mmap({s:#x}, {STACK}, PROT_NONE, MAP_PRIVATE|MAP_FIXED|"
                     f"MAP_ANONYMOUS|MAP_STACK, -1, 0) = {s:#x}")
        lines.append(f"100 mprotect({s + P:#x}, {STACK - P}, PROT_READ|PROT_WRITE) = 0")
        lines.append(f"100 clone3({{flags=CLONE_VM|CLONE_THREAD, stack={s:#x}}}, 88) = {101 + k}")
    lines.append(f"100 mmap({RES:#x}, {64 * P}, PROT_NONE, MAP_PRIVATE|MAP_FIXED|"
                 f"MAP_ANONYMOUS|MAP_NORESERVE, -1, 0) = {RES:#x}")
    lines.append(f"100 mprotect({RES:#x}, {4 * P}, PROT_READ|PROT_WRITE) = 0")
    lines.append(f"100 mprotect({RES + 4 * P:#x}, {4 * P}, PROT_READ|PROT_WRITE) = 0")
    lines.append(f"100 mmap({BLOCK:#x}, {16 * P}, PROT_READ|PROT_WRITE, MAP_PRIVATE|"
                 f"MAP_FIXED|MAP_ANONYMOUS, -1, 0) = {BLOCK:#x}")
    lines.append(f"100 mprotect({BLOCK + 8 * P:#x}, {P}, PROT_NONE) = 0")
    return [l + "\n" for l in lines]


def _run(strategy):
    calls, _ = strace.parse(_log())
    return replay(calls, start_maps=maps.parse(START), rewrite=strategy)


def _vmas(r, lo, hi):
    return [(v.start - lo, v.end - lo) for v in r.mm.vma_tree.overlapping(lo, hi)]


def test_as_recorded():
    r = _run(None)
    assert r.mismatches == []
    assert len(_vmas(r, BASE, BASE + 3 * STACK)) == 6
    assert len(_vmas(r, RES, RES + 64 * P)) == 2
    assert len(_vmas(r, BLOCK, BLOCK + 16 * P)) == 3


@pytest.mark.parametrize("strategy", ["guard", "guard_batched"])
def test_idioms_become_markers(strategy):
    r = _run(strategy)
    # Addresses do not move: every result still equals the log's.
    assert r.mismatches == []
    assert r.rewrites == {"thread stack": 3, "reservation": 1, "opened": 2, "guard page": 1}
    assert _vmas(r, BASE, BASE + 3 * STACK) == [(0, 3 * STACK)]
    assert _vmas(r, RES, RES + 64 * P) == [(0, 64 * P)]
    assert _vmas(r, BLOCK, BLOCK + 16 * P) == [(0, 16 * P)]
    mm = r.mm
    for k in range(3):
        assert mm.access(BASE + k * STACK, write=True) == signal.SIGSEGV   # each guard
        assert mm.access(BASE + k * STACK + P, write=True) is None
    assert mm.access(RES + 7 * P, write=True) is None                     # opened
    assert mm.access(RES + 8 * P) == signal.SIGSEGV                       # still reserved
    assert mm.access(BLOCK + 8 * P) == signal.SIGSEGV
    assert mm.access(BLOCK + 9 * P, write=True) is None
    counts = r.counter.by_name
    if strategy == "guard":
        assert counts["madvise(GUARD_INSTALL)"] == 5 and counts["madvise(GUARD_REMOVE)"] == 2
        assert "process_madvise(GUARD_INSTALL)" not in counts
    else:
        # The stacks' guards wait for the first call that is not part of an idiom.
        assert "madvise(GUARD_INSTALL)" not in counts
        assert counts["process_madvise(GUARD_INSTALL)"] + \
            counts["process_madvise(GUARD_REMOVE)"] < 7
    # The absorbed mprotects (one per stack) are not issued.
    assert counts["mprotect"] == 0


def test_stacks_with_markers_as_the_kernel_lays_them_out(live):
    """glibc 2.42's stacks on the kernel (mmap read-write, guard install, the thread
    writes its top page): the same single VMA and guard pages the rewrite leaves."""
    for k in range(3):
        s = BASE + k * STACK
        live.mmap(s, STACK, pt.PROT_READ | pt.PROT_WRITE,
                  pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_STACK | pt.MAP_FIXED_NOREPLACE)
        live.madvise(s, P, pt.MADV_GUARD_INSTALL)
        live.write(s + STACK - P, b"x")
    kernel = [(v.start - BASE, v.end - BASE) for v in live.vmas()
              if BASE <= v.start < BASE + 3 * STACK]
    r = _run("guard")
    assert _vmas(r, BASE, BASE + 3 * STACK) == kernel
    for k in range(3):
        assert live.access(BASE + k * STACK) == r.mm.access(BASE + k * STACK)
