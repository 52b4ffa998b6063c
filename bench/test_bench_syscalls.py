"""Single-page syscalls and a 1,000-stack allocation, ptengine beside the host kernel making
the same calls in the same run (issue #3; single-page guards from #4; batches from #13).

Unbatched, target: ptengine no slower than the kernel (ratio <= 1.0). ptengine's side is a
Python loop over the MM methods (the API a user calls); the kernel's is LiveMM.batch, the
same syscalls back to back in the live server, timed there.

Batched, target: ptengine at least 10x faster than the kernel (ratio <= 0.1): one
CALL_DTYPE array run by mm.batch (the simulator's C loop, timed around the call) and by
LiveMM.batch (the server's loop). Times are per repetition (per pair of calls, or per
stack).
"""
import pytest

from ptengine.calls import calls
from ptengine.constants import (MADV_GUARD_INSTALL, MADV_GUARD_REMOVE, MAP_ANONYMOUS,
                                MAP_PRIVATE, MAP_STACK, PAGE_SIZE, PROT_NONE, PROT_READ,
                                PROT_WRITE)

RW, ANON = PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS
AT_MOST = 1.0
GOAL = "no slower than the kernel"
STACK_SIZE, GUARD = 8 << 20, PAGE_SIZE            # glibc's defaults (RLIMIT_STACK 8 MiB)


# name -> the two calls one repetition makes on the middle page of a 3-page RW mapping
PAIRS = {
    "guard_install_remove_1page": [("madvise", PAGE_SIZE, PAGE_SIZE, MADV_GUARD_INSTALL),
                                   ("madvise", PAGE_SIZE, PAGE_SIZE, MADV_GUARD_REMOVE)],
    "mprotect_split_merge_1page": [("mprotect", PAGE_SIZE, PAGE_SIZE, PROT_READ),
                                   ("mprotect", PAGE_SIZE, PAGE_SIZE, RW)],
}


@pytest.mark.parametrize("name", list(PAIRS))
def test_one_page_pair(bench, pair, sizes, name):
    n = sizes["pairs"]
    p = pair(3 * PAGE_SIZE, RW, ANON)
    pairs = PAIRS[name] * n
    sim = bench.sim(p.sim_calls(*pairs), per=n)
    assert p.mm.map_count == 1
    kern = bench.reference(lambda: p.on_kernel(*pairs), per=n) if p.kernel else None
    bench.benchmark.extra_info["repetitions"] = n
    bench.ratio("vs kernel", sim, kern, at_most=AT_MOST, goal=GOAL,
                ref_detail="(LiveMM.batch)")


BATCHED_AT_MOST = 0.1
BATCHED_GOAL = ">= 10x faster than the kernel running the same array"


def _batched(bench, sim_side, kernel_side, rows_for, n):
    """mm.batch and LiveMM.batch of the array rows_for(base) makes for each side, a side
    being (mm, base of its mapping); every row must succeed on both."""
    def run(mm, base):
        rows = rows_for(base)

        def once():
            results, ns = mm.batch(rows)
            assert (results >= 0).all(), f"a batched call failed: {results[results < 0][:3]}"
            return ns
        return once
    sim = bench.sim(run(*sim_side), per=n)
    kern = bench.reference(run(*kernel_side), per=n) if kernel_side[0] is not None else None
    bench.benchmark.extra_info["repetitions"] = n
    bench.ratio("batched vs kernel", sim, kern, at_most=BATCHED_AT_MOST, goal=BATCHED_GOAL,
                ref_detail="(LiveMM.batch, the same array)")


@pytest.mark.parametrize("name", list(PAIRS))
def test_one_page_pair_batched(bench, pair, sizes, name):
    n = sizes["pairs"]
    p = pair(3 * PAGE_SIZE, RW, ANON)
    _batched(bench, (p.mm, p.sim_base), (p.kernel, p.kernel_base),
             lambda base: calls([(c, base + offset, *args) for c, offset, *args in PAIRS[name]]
                                * n), n)
    assert p.mm.map_count == 1


def test_mmap_munmap_1page_batched(bench, kernel, sizes):
    """mmap(NULL, 1 page) and munmap of the address it returned (REL: the munmap row adds
    the mmap row's result to its address)."""
    import ptengine
    n = sizes["pairs"]
    mm = ptengine.System().spawn()

    def rows_for(_base):
        rows = calls([("mmap", 0, PAGE_SIZE, RW, ANON), ("munmap", 0, PAGE_SIZE)] * n)
        rows["ref"][1::2] = range(0, 2 * n, 2)
        rows["flags"][1::2] = 1
        return rows
    _batched(bench, (mm, None), (kernel, None), rows_for, n)
    assert mm.map_count == 0
    mm.exit()


def _top_down_slot(live, length, prot, flags):
    """Where the live server's next mmap(NULL, length) lands: map it and unmap it. The
    kernel's top-down search gives the same address again while nothing else changes."""
    addr = live.mmap(0, length, prot, flags)
    live.munmap(addr, length)
    return addr


def test_mmap_munmap_1page(bench, kernel, sizes):
    import ptengine
    n = sizes["pairs"]
    mm = ptengine.System().spawn()

    def sim_loop():
        for _ in range(n):
            mm.munmap(mm.mmap(0, PAGE_SIZE, RW, ANON), PAGE_SIZE)

    sim = bench.sim(sim_loop, per=n)
    kern = None
    if kernel is not None:
        slot = _top_down_slot(kernel, PAGE_SIZE, RW, ANON)
        pairs = [("mmap", 0, PAGE_SIZE, RW, ANON), ("munmap", slot, PAGE_SIZE)] * n

        def kernel_round():
            results, ns = kernel.batch(pairs)
            assert results[0::2].tolist() == [slot] * n and not results[1::2].any()
            return ns
        kern = bench.reference(kernel_round, per=n)
    mm.exit()
    bench.benchmark.extra_info["repetitions"] = n
    bench.ratio("vs kernel", sim, kern, at_most=AT_MOST, goal=GOAL,
                ref_detail="(LiveMM.batch)")


# strategy -> (the stack's mmap prot, its second call: name, offset into the stack, args)
STACKS = {
    # glibc allocate_stack(): PROT_NONE mapping, then everything above the guard made RW
    "prot_none": (PROT_NONE, ("mprotect", GUARD, (STACK_SIZE, RW))),
    # the same stack with a guard region instead of a PROT_NONE VMA
    "guard": (RW, ("madvise", 0, (GUARD, MADV_GUARD_INSTALL))),
}


@pytest.mark.parametrize("strategy", list(STACKS))
def test_stacks(bench, kernel, sizes, strategy):
    """sizes["stacks"] thread stacks of 8 MiB + a 4 KiB guard, allocated top-down one after
    another; the span is unmapped between rounds (untimed)."""
    import ptengine
    n, length = sizes["stacks"], STACK_SIZE + GUARD
    prot, (name, offset, args) = STACKS[strategy]
    flags = ANON | MAP_STACK
    mm = ptengine.System().spawn()
    second = getattr(mm, name)
    made = []

    def sim_loop():
        for _ in range(n):
            a = mm.mmap(0, length, prot, flags)
            second(a + offset, *args)
            made.append(a)

    def unmap_all():
        if made:
            mm.munmap(min(made), n * length)
            made.clear()

    sim = bench.sim(sim_loop, setup=unmap_all, per=n)
    sim_vmas = mm.map_count
    unmap_all()
    mm.exit()
    kern = None
    if kernel is not None:
        top = _top_down_slot(kernel, length, prot, flags)
        addrs = [top - i * length for i in range(n)]
        rows = calls([c for a in addrs
                      for c in (("mmap", 0, length, prot, flags), (name, a + offset, *args))])

        def kernel_round():
            results, ns = kernel.batch(rows)
            kernel.munmap(addrs[-1], n * length)
            assert results[0::2].tolist() == addrs, "the kernel placed a stack elsewhere"
            assert not results[1::2].any()
            return ns
        kern = bench.reference(kernel_round, per=n)
    bench.benchmark.extra_info.update(stacks=n, vmas=sim_vmas)
    bench.ratio("vs kernel", sim, kern, at_most=AT_MOST, goal=GOAL,
                ref_detail="(LiveMM.batch)", note=f"{sim_vmas} VMAs per {n} stacks")
