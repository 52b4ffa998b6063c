"""W7, a fiber-stack pool (mirrors no kernel file: ClickHouse FiberStack, folly
GuardPageAllocator, boost.context)."""
from ... import constants as C
from ..blocks import KiB, Strategy, guarded_mapping, release
from ..registry import workload


def _fiber_closed_form(strategy, p):
    if p["pattern"] != "live":
        return 0                            # bursts and serial cycles free every fiber
    return 2 * p["fibers"] if not Strategy(strategy).markers else min(p["fibers"], 1)


@workload("fiber_pool", alias="W7", scale="fibers", closed_form=_fiber_closed_form,
          defaults=dict(fibers=300, pattern="live", burst=64, rounds=40, cycles=500,
                        stack_size=320 * KiB, touch_pages=1),
          small=dict(fibers=1500))
def fiber_pool(run):
    """W7 ClickHouse fibers: 320 KiB stack + 1 guard page each (src/Common/FiberStack.h).

    FiberStack maps stack + page RW and mprotects the lowest page PROT_NONE (PR #78423:
    MADV_GUARD_INSTALL on >= 6.13); freeing is munmap. pattern=live keeps `fibers` alive;
    pattern=bursts allocates `burst` fibers and frees them, `rounds` times (the peak is the
    figure); pattern=serial allocates and frees one fiber `cycles` times.
    """
    p = run.p
    batcher = run.batcher()

    def alloc():
        return guarded_mapping(run.mm, p.stack_size, C.PAGE_SIZE, 0, run.strategy,
                               batcher=batcher, touch_pages=p.touch_pages)

    if p.pattern == "live":
        for _ in run.objects(p.fibers, "fiber"):
            alloc()
        run.sync()
    elif p.pattern == "bursts":
        for _ in run.objects(p.rounds, "burst"):
            stacks = [alloc() for _ in range(p.burst)]
            run.sync()                      # the burst's fibers start running
            run.observe()
            for m in stacks:
                release(run.mm, m, batcher)
    elif p.pattern == "serial":
        for _ in run.objects(p.cycles, "fiber cycle"):
            m = alloc()
            run.sync()
            run.observe()
            release(run.mm, m, batcher)
    else:
        raise ValueError(f"pattern must be live, bursts or serial, not {p.pattern!r}")
