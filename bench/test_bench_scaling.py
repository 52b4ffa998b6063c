"""Scaling and memory footprint of the simulator (issue #3).

- one mprotect split+merge of a page at 1,000,000 VMAs within 2x of the same at 1,000
  (max_map_count raised); 20,000 instead of 1,000,000 in smoke mode;
- the same for a top-down placement that must pass over every VMA (the gap search of the
  maple tree, O(log n) in the kernel): a hole opened at the top of the layout, too small
  for the request, so the free-area cache cannot answer;
- at most 256 bytes of Python-process memory per VMA (RSS delta over building the
  1,000,000 VMAs);
- memory per page-table page (RSS delta per table, beside the kernel's 4096-byte page and
  its 64-byte struct page; no target).

The layouts are checkerboards: a PROT_NONE MAP_NORESERVE mapping with every other page made
PROT_READ, so n VMAs cost n/2 mprotect calls. One build serves the memory figure and the
scaling benchmark (module-scoped cache), since a million VMAs take a while to make.
"""
import gc
import time

import pytest

import ptengine
from ptengine.constants import (MADV_GUARD_INSTALL, MAP_ANONYMOUS, MAP_FIXED, MAP_NORESERVE,
                                MAP_PRIVATE, PAGE_SIZE, PMD_SIZE, PROT_NONE, PROT_READ,
                                PROT_WRITE)

NORESERVE = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE
OPS = 1000                      # split+merge pairs per timed round
KERNEL_TABLE_BYTES = PAGE_SIZE + 64   # a page-table page and its struct page


def rss_bytes():
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE_SIZE


class Checkerboard:
    """n VMAs alternating PROT_NONE / PROT_READ (n odd: both ends PROT_NONE)."""

    def __init__(self, n):
        self.system = ptengine.System(max_map_count=n + 1000)
        self.mm = self.system.spawn()
        before = rss_bytes()
        self.base = self.mm.mmap(0, n * PAGE_SIZE, PROT_NONE, NORESERVE)
        for i in range(1, n - 1, 2):
            self.mm.mprotect(self.base + i * PAGE_SIZE, PAGE_SIZE, PROT_READ)
        self.rss_delta = rss_bytes() - before
        self.n = self.mm.map_count
        mid = (n // 2) | 1                                       # a PROT_READ page
        self.page = self.base + mid * PAGE_SIZE

    def split_merge(self, times=OPS):
        """PROT_NONE merges the page with both neighbours (3 VMAs -> 1); PROT_READ splits
        them again (1 -> 3)."""
        mprotect, page = self.mm.mprotect, self.page
        for _ in range(times):
            mprotect(page, PAGE_SIZE, PROT_NONE)
            mprotect(page, PAGE_SIZE, PROT_READ)

    def place_past_all(self, times=OPS):
        """Unmap the board's top page (a one-page hole above every other VMA, and the
        end of what the free-area cache knew), map two pages (which fit only below the
        board), then undo both: 4 syscalls, one search over the whole layout."""
        mm, top = self.mm, self.base + (self.n - 1) * PAGE_SIZE
        for _ in range(times):
            mm.munmap(top, PAGE_SIZE)
            low = mm.mmap(0, 2 * PAGE_SIZE, PROT_READ, NORESERVE)
            mm.munmap(low, 2 * PAGE_SIZE)
            mm.mmap(top, PAGE_SIZE, PROT_NONE, NORESERVE | MAP_FIXED)


@pytest.fixture(scope="module")
def boards():
    """n -> Checkerboard, built on first use and kept for the module."""
    made = {}
    yield made
    for b in made.values():
        b.mm.exit()


def board(boards, n):
    if n not in boards:
        boards[n] = Checkerboard(n | 1)
    return boards[n]


def test_memory_per_vma(bench, boards, sizes):
    """Build the big checkerboard (timed: its build rate goes to the benchmark) and charge
    the process's RSS growth to its VMAs."""
    n = sizes["vmas_big"]
    boards.pop(n, None)
    bench.sim(lambda: board(boards, n), rounds=1)
    b = boards[n]
    per_vma = b.rss_delta / b.n
    bench.benchmark.extra_info.update(vmas=b.n, rss_delta_bytes=b.rss_delta)
    bench.figure("bytes / VMA", per_vma, unit="B", at_most=256,
                 goal="<= 256 bytes of process memory per VMA",
                 reference=f"<= 256 B (RSS delta over {b.n} VMAs)")


def _scaling(bench, boards, sizes, op):
    """op(board, times) timed at the big board, against the same at the small one."""
    small, big = board(boards, sizes["vmas_small"]), board(boards, sizes["vmas_big"])
    ops = OPS if not bench.smoke else 100
    t_big = bench.sim(lambda: op(big, ops), per=ops)
    assert big.mm.map_count == big.n

    def small_round():
        t0 = time.perf_counter_ns()
        op(small, ops)
        return time.perf_counter_ns() - t0
    t_small = bench.reference(small_round, rounds=max(3, sizes["rounds"]), per=ops)
    assert small.mm.map_count == small.n
    bench.benchmark.extra_info.update(vmas_small=small.n, vmas_big=big.n)
    bench.ratio(f"{big.n // 1000}K / {small.n // 1000}K VMAs", t_big, t_small, at_most=2.0,
                goal="op at 1M VMAs <= 2x op at 1K", ref_detail=f"(at {small.n} VMAs)")


def test_mprotect_scaling(bench, boards, sizes):
    _scaling(bench, boards, sizes, Checkerboard.split_merge)


def test_placement_scaling(bench, boards, sizes):
    _scaling(bench, boards, sizes, Checkerboard.place_past_all)


def test_memory_per_page_table(bench, sizes):
    """One guard page at the start of every 2 MiB of a large NORESERVE mapping: one PTE
    table each (plus the PMD and PUD tables above them), no data pages."""
    span = sizes["pt_span"]
    mm = ptengine.System().spawn()
    base = mm.mmap(0, span, PROT_READ | PROT_WRITE, NORESERVE)
    before = []

    def install():
        before.append(rss_bytes())
        for addr in range(base, base + span, PMD_SIZE):
            mm.madvise(addr, PAGE_SIZE, MADV_GUARD_INSTALL)

    bench.sim(install, rounds=1)
    delta = rss_bytes() - before[-1]
    tables = mm.status()["VmPTE"] * 1024 // PAGE_SIZE
    mm.exit()
    bench.benchmark.extra_info.update(tables=tables, rss_delta_bytes=delta)
    bench.ratio("vs kernel", delta / tables, KERNEL_TABLE_BYTES,
                fmt=lambda v: f"{v:.4g} B", goal="bytes per page-table page (no target)",
                ref_detail="(4 KiB page + struct page)")
