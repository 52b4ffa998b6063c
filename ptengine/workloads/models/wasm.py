"""W8, reservation-style guards (mirrors no kernel file: V8 wasm32 memories,
src/objects/backing-store.cc)."""
from ... import constants as C
from ..blocks import ANON, RW, GiB, MiB, Strategy, page_align
from ..registry import workload


@workload("wasm", alias="W8", scale="memories",
          closed_form=lambda s, p: 2 * p["memories"] if not Strategy(s).markers
          else min(p["memories"], 1),
          defaults=dict(memories=16, reservation=8 * GiB, committed=64 * MiB, grow_steps=0,
                        touch_pages=1),
          small=dict(memories=16))
def wasm(run):
    """W8 wasm32 memories: an 8 GiB reservation each, `committed` bytes accessible.

    prot_none: mmap the reservation PROT_NONE and mprotect the committed prefix RW, growing
    it by mprotect (2 VMAs per memory). Markers: mmap the reservation RW|NORESERVE and
    install markers over everything past the committed prefix, growing by GUARD_REMOVE;
    the VMAs merge (adjacent reservations are alike: 1 VMA where workloads.md §2 counts W),
    but each memory costs (8 GiB - c) / 2 MiB PTE tables: the crossover where markers lose.
    """
    p = run.p
    batcher = run.batcher()
    step = page_align(p.committed // (p.grow_steps + 1))
    for _ in run.objects(p.memories, "memory"):
        if run.strategy.markers:
            base = run.mm.mmap(0, p.reservation, RW, ANON | C.MAP_NORESERVE)
        else:
            base = run.mm.mmap(0, p.reservation, C.PROT_NONE, ANON | C.MAP_NORESERVE)
        committed = step
        if run.strategy.markers:
            guard = (base + committed, p.reservation - committed)
            if batcher is not None:
                batcher.add(*guard)
            else:
                run.mm.madvise(*guard, C.MADV_GUARD_INSTALL)
        else:
            run.mm.mprotect(base, committed, RW)
        if p.touch_pages:
            run.mm.touch(base, min(p.touch_pages * C.PAGE_SIZE, committed), write=True)
        for _ in range(p.grow_steps):          # memory.grow
            if run.strategy.markers:
                run.sync()
                run.mm.madvise(base + committed, step, C.MADV_GUARD_REMOVE)
            else:
                run.mm.mprotect(base + committed, step, RW)
            committed += step
    run.sync()
