"""Per-page cost of the compiled core's hot walkers over a 1 GiB range (64 MiB in smoke
mode), called directly on a PageTables: beside the host kernel doing the same madvise on
memory of this process in the same run, and beside a numpy fill of as many u64 (the
memory-bandwidth floor for touching one entry per page).

    pytest bench/test_bench_core.py --benchmark-enable    # the figures
    pytest bench/test_bench_core.py                        # smoke: each body once

(bench/test_bench_walkers.py measures the same operations through the whole MM layer.)
Each side times one batch call over the whole range, setup untimed: ptengine's walk, the
kernel's madvise() through a Python mmap object (a compiled call: advice 102/103 guard
install/remove, 4 DONTNEED, 23 POPULATE_WRITE), numpy's fill. Ratios (ptengine /
reference, lower is better) go to benchmark.extra_info["ratios"] through the `bench`
fixture of bench/conftest.py: "vs kernel" (target <= 0.1, i.e. >= 10x faster) and
"vs fill" (target <= 4).
"""
import mmap
import time

import numpy as np
import pytest

from ptengine import core as _core

PAGE = 4096
BASE = 0x7F0000000000
MADV_DONTNEED, MADV_NOHUGEPAGE, MADV_POPULATE_WRITE = 4, 15, 23
MADV_GUARD_INSTALL, MADV_GUARD_REMOVE = 102, 103
# A PAGE_COPY-like prot for private anonymous memory.
PROT_PRIVATE = _core.PTE_PRESENT | _core.PTE_USER | _core.PTE_ACCESSED | _core.PTE_NX
KERNEL_AT_MOST, FLOOR_AT_MOST = 0.1, 4.0


class Core:
    """A PageTables over [BASE, BASE + size), the same size of anonymous memory in this
    process for the kernel, and a u64 array of one entry per page for the fill."""

    def __init__(self, size):
        self.size, self.pages = size, size // PAGE
        self.frames = _core.Frames()
        self.pt = _core.PageTables(self.frames)
        self.host = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        try:
            self.host.madvise(MADV_NOHUGEPAGE, 0, size)
            self.host.madvise(MADV_GUARD_INSTALL, 0, PAGE)
            self.host.madvise(MADV_GUARD_REMOVE, 0, PAGE)
            self.host_ok = True
        except OSError:
            self.host_ok = False
        self.fill_buf = np.zeros(self.pages, np.uint64)

    def kernel_ns(self, advice, setup_advice=None):
        if setup_advice is not None:
            self.host.madvise(setup_advice, 0, self.size)
        t0 = time.perf_counter_ns()
        self.host.madvise(advice, 0, self.size)
        return time.perf_counter_ns() - t0

    def fill_ns(self):
        t0 = time.perf_counter_ns()
        self.fill_buf.fill(_core.GUARD_PTE)
        return time.perf_counter_ns() - t0

    def compare(self, bench, op, setup, advice, setup_advice=None):
        sim = bench.sim(op, setup=setup, per=self.pages)
        kern = None
        if self.host_ok:
            kern = bench.reference(lambda: self.kernel_ns(advice, setup_advice),
                                   per=self.pages)
        floor = bench.reference(self.fill_ns, rounds=7, per=self.pages)
        bench.benchmark.extra_info.update(pages=self.pages)
        bench.ratio("vs kernel", sim, kern, at_most=KERNEL_AT_MOST,
                    goal=">= 10x faster than the kernel per page",
                    note="" if self.host_ok else "host has no guard regions")
        bench.ratio("vs fill", sim, floor, at_most=FLOOR_AT_MOST,
                    goal="within 4x of a numpy fill of one u64 per page")

    def close(self):
        self.host.close()


@pytest.fixture
def core(sizes):
    c = Core(sizes["bulk"])
    yield c
    c.close()


def test_core_guard_install(bench, core):
    pt, end = core.pt, BASE + core.size
    core.compare(bench, lambda: pt.install_guards(BASE, end),
                 lambda: pt.remove_guards(BASE, end), MADV_GUARD_INSTALL, MADV_GUARD_REMOVE)
    assert pt.count(BASE, end)["guard"] == core.pages


def test_core_guard_remove(bench, core):
    pt, end = core.pt, BASE + core.size
    core.compare(bench, lambda: pt.remove_guards(BASE, end),
                 lambda: pt.install_guards(BASE, end), MADV_GUARD_REMOVE, MADV_GUARD_INSTALL)
    assert pt.count(BASE, end)["none"] == core.pages


def test_core_zap_guarded(bench, core):
    """DONTNEED over a guarded range: every entry visited, every guard kept (both sides
    keep the guards, so the rounds need no setup)."""
    pt, end = core.pt, BASE + core.size
    pt.install_guards(BASE, end)
    if core.host_ok:
        core.host.madvise(MADV_GUARD_INSTALL, 0, core.size)
    core.compare(bench, lambda: pt.zap(BASE, end, _core.ZAP_RECLAIM_PT), None, MADV_DONTNEED)
    assert pt.count(BASE, end)["guard"] == core.pages


def test_core_zap_populated(bench, core):
    """DONTNEED over populated private anonymous memory: every page unmapped and freed,
    and (PT_RECLAIM, as on the host) every emptied PTE table with it."""
    pt, end = core.pt, BASE + core.size
    core.compare(bench, lambda: pt.zap(BASE, end, _core.ZAP_RECLAIM_PT),
                 lambda: pt.fault_anon(BASE, end, True, PROT_PRIVATE),
                 MADV_DONTNEED, MADV_POPULATE_WRITE)
    assert pt.rss_anon == 0 and core.frames.nr_used == 0 and pt.nr_pte_tables == 0
