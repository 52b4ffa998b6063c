"""Allocator guards, W5 large blocks, W6 guards in a region, GWP-ASan (mirrors no kernel file).

Each model issues the calls the allocator it names makes; the kernel side is the MM's.
"""
import math

from ... import constants as C
from ..blocks import (ANON, RW, KiB, MiB, Strategy, clear_guard, guarded_mapping, page_align,
                     release, set_guard)
from ..registry import workload


# --------------------------------------------------------------------------------------
# W5: [G][data][G] per large allocation (scudo secondary, hardened_malloc large)
# --------------------------------------------------------------------------------------
def _large_closed_form(strategy, p):
    if p["churn"]:
        return None                      # placement after frees decides
    k = p["blocks"]
    return (2 * k + 1 if k else 0) if not Strategy(strategy).markers else min(k, 1)


@workload("large_alloc", alias="W5", scale="blocks", closed_form=_large_closed_form,
          defaults=dict(blocks=1000, churn=0, min_size=64 * KiB, max_size=4 * MiB,
                        guard_size=4 * KiB, name="", touch_pages=1, seed=5),
          small=dict(blocks=1000, churn=1000))
def large_alloc(run):
    """W5 large allocations with a guard page each side (scudo secondary, hardened_malloc).

    Sizes are log-uniform in [min_size, max_size] (seeded). `blocks` stay live; `churn`
    times a random one is freed (munmap) and a new one allocated, which lands in the
    highest hole that fits. name="scudo:secondary" labels blocks as scudo does on Android.
    Under guard_batched both guards of a block go in one process_madvise.
    """
    p = run.p
    batcher = run.batcher()
    lo, hi = math.log(p.min_size), math.log(p.max_size)

    def alloc():
        size = page_align(int(math.exp(run.rng.uniform(lo, hi))))
        m = guarded_mapping(run.mm, size, p.guard_size, p.guard_size, run.strategy,
                            p.name or None, batcher=batcher, touch_pages=p.touch_pages)
        run.sync()                       # the block is handed out: its guards exist
        return m

    live = [alloc() for _ in run.objects(p.blocks, "malloc")]
    run.observe()
    for _ in run.objects(p.churn if live else 0, "free+malloc"):
        i = run.rng.randrange(len(live))
        release(run.mm, live[i], batcher)
        live[i] = alloc()
        run.observe()


# --------------------------------------------------------------------------------------
# W6: guard pages inside one RW region (jemalloc san_guard, Electric Fence, guard slabs)
# --------------------------------------------------------------------------------------
@workload("region_guards", alias="W6", scale="guards",
          closed_form=lambda s, p: (2 * p["guards"] + 1) if not Strategy(s).markers else 1,
          defaults=dict(guards=1000, region_size=256 * MiB, touch_pages=0),
          small=dict(guards=4000))
def region_guards(run):
    """W6 g non-adjacent guard pages inside one RW region (jemalloc's os_vm_mark_guards).

    The region is mapped RW once (an arena chunk); each guard page is mprotected PROT_NONE
    (+2 VMAs) or gets a marker (+0 VMAs, a PTE table per 2 MiB it lands in). Guards are
    spread evenly; under guard_batched they go out in batches of 1024.
    """
    p = run.p
    stride = (p.region_size // max(p.guards, 1)) & ~(C.PAGE_SIZE - 1)
    if stride < 2 * C.PAGE_SIZE:
        raise ValueError("region_size too small for that many non-adjacent guard pages")
    batcher = run.batcher()
    base = run.mm.mmap(0, p.region_size, RW, ANON)
    if p.touch_pages:
        run.mm.touch(base, min(p.touch_pages * C.PAGE_SIZE, p.region_size), write=True)
    middle = (stride // 2) & ~(C.PAGE_SIZE - 1)
    for i in run.objects(p.guards, "guard page"):
        set_guard(run.mm, base + i * stride + middle, C.PAGE_SIZE, run.strategy, batcher)
    run.sync()


# --------------------------------------------------------------------------------------
# GWP-ASan: a pool of 1-page slots between guard pages
# --------------------------------------------------------------------------------------
@workload("gwp_asan", alias="W6g", scale="events",
          closed_form=lambda s, p: (2 * min(p["live"], p["slots"], p["events"]) + 1)
          if not Strategy(s).markers else 1,
          defaults=dict(slots=16, events=5000, live=8, seed=6),
          small=dict(events=20000))
def gwp_asan(run):
    """GWP-ASan guarded pool (compiler-rt/lib/gwp_asan): [G][slot][G]...[slot][G].

    The pool is reserved PROT_NONE; a sampled allocation mprotects its slot RW and a free
    maps PROT_NONE over it with MAP_FIXED (2 write-locked calls per allocation). Under the
    guard strategies the pool is RW with markers everywhere but live slots: allocation
    is GUARD_REMOVE, free is GUARD_INSTALL (which also discards the data). `events`
    sampled allocations, at most `live` alive (the oldest is freed first).
    """
    p = run.p
    page = C.PAGE_SIZE
    pool_size = (2 * p.slots + 1) * page
    markers = run.strategy.markers
    if markers:
        pool = run.mm.mmap(0, pool_size, RW, ANON)
        run.mm.madvise(pool, pool_size, C.MADV_GUARD_INSTALL)
    else:
        pool = run.mm.mmap(0, pool_size, C.PROT_NONE, ANON)
    free = list(range(p.slots))
    alive = []
    for _ in run.objects(p.events, "sampled malloc"):
        if len(alive) >= max(min(p.live, p.slots), 1):
            slot = alive.pop(0)
            addr = pool + (2 * slot + 1) * page
            if markers:
                run.mm.madvise(addr, page, C.MADV_GUARD_INSTALL)
            else:
                run.mm.mmap(addr, page, C.PROT_NONE, ANON | C.MAP_FIXED)
            free.append(slot)
        slot = free.pop(run.rng.randrange(len(free)))
        addr = pool + (2 * slot + 1) * page
        clear_guard(run.mm, addr, page, Strategy.GUARD if markers else Strategy.PROT_NONE)
        run.mm.touch(addr, page, write=True)
        alive.append(slot)
        run.observe()
