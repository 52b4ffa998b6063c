"""Thread stacks, glibc nptl W1, musl W2, HotSpot on glibc W4 (mirrors no kernel file).

The glibc model follows nptl/allocatestack.c and nptl/nptl-stack.c of glibc 2.42
(zatrazz/glibc @2e61dd76: allocate_thread_stack, setup_stack_prot, name_stack_maps,
advise_stack_range, get_cached_stack, queue_stack/free_stacks); glibc <= 2.41 is the same
allocator with the PROT_NONE mode only.
"""
import dataclasses

from ... import constants as C
from ..blocks import (ANON, RW, KiB, MiB, Strategy, guarded_mapping, name_vma, page_align,
                     release, set_guard, clear_guard, touch_top)
from ..recorder import handled, tolerant
from ..registry import workload

# nptl/pthreadP.h: PTHREAD_STACK_MIN on x86-64; advise_stack_range keeps this much below SP.
PTHREAD_STACK_MIN = 16 * KiB
# Model assumption: at exit the thread's SP is 2 pages below the top of its block (the TCB,
# static TLS and start_thread's frame live above it).
EXIT_SP_FROM_TOP = 2 * C.PAGE_SIZE
GLIBC_STACK_FLAGS = ANON | C.MAP_STACK


@dataclasses.dataclass(slots=True)
class Stack:
    addr: int
    size: int                 # stackblock_size: stack + guard
    guard: int
    markers: bool             # pd->stack_mode: guard made by MADV_GUARD_INSTALL


class Glibc:
    """nptl's stack allocator for one process.

    `markers=False` is glibc <= 2.41 (mmap PROT_NONE + mprotect). `markers=True` is glibc
    2.42: mmap RW + MADV_GUARD_INSTALL, and a process-wide switch to the PROT_NONE mode
    for good on the first failed madvise (that stack gets mprotect(guard, PROT_NONE)).
    With a `batcher` (guard_batched, hypothetical) the installs go out in process_madvise
    batches, flushed by `sync()`.
    """

    def __init__(self, run, mm=None, *, markers, cache_size=40 * MiB, decorate_maps=False,
                 touch_pages=1, batcher=None):
        self.run = run
        self.mm = mm or run.mm
        self.markers = markers                # allocate_stack_mode == ALLOCATE_GUARD_MADV_GUARD
        self.cache_size = cache_size
        self.decorate_maps = decorate_maps
        self.touch_pages = touch_pages
        self.batcher = batcher
        self.cache = []                       # most recently queued first (dl_stack_cache)
        self.cache_bytes = 0

    # -- allocate_stack() ------------------------------------------------------------
    def create(self, tid, stack_size=8 * MiB, guard_size=C.PAGE_SIZE):
        """pthread_create: a stack (cached or new) with its guard; named if decorated."""
        guard = page_align(guard_size)
        size = page_align(stack_size) + guard
        st = self._cached(size) if self.cache else None
        if st is None:
            st = self._allocate(size, guard)
        elif guard != st.guard:
            self._adjust_guard(st, guard)
        touch_top(self.mm, st.addr, st.size, self.touch_pages)     # the TCB is written
        if self.decorate_maps:
            self._name(st, f" glibc: pthread stack: {tid}")
        return st

    def _allocate(self, size, guard):
        mm = self.mm
        if self.markers or guard == 0:
            addr = mm.mmap(0, size, RW, GLIBC_STACK_FLAGS)
        else:
            addr = mm.mmap(0, size, C.PROT_NONE, GLIBC_STACK_FLAGS)
        st = Stack(addr, size, guard, self.markers)
        if guard == 0:
            return st
        if not self.markers:
            mm.mprotect(addr + guard, size - guard, RW)
        elif self.batcher is not None:
            self.batcher.add(addr, guard)
        else:
            try:
                handled(mm).madvise(addr, guard, C.MADV_GUARD_INSTALL)
            except OSError as e:
                self._fall_back(e)
                mm.mprotect(addr, guard, C.PROT_NONE)
                st.markers = False
        return st

    def _fall_back(self, err):
        """setup_stack_prot(): the first failed madvise switches the process to PROT_NONE."""
        self.markers = False
        self.run.extra.setdefault("glibc_fallback", f"MADV_GUARD_INSTALL failed with errno "
                                  f"{err.errno}; process switched to PROT_NONE guards")

    def sync(self):
        """Flush batched guard installs; on failure fall back as setup_stack_prot does."""
        if self.batcher is None or not len(self.batcher):
            return
        try:
            self.batcher.flush(handled(self.mm))
        except OSError as e:
            self._fall_back(e)
            for addr, length in self.batcher.failed:
                self.mm.mprotect(addr, length, C.PROT_NONE)

    def _adjust_guard(self, st, guard):
        """adjust_stack_prot(): grow or shrink the guard of a cached stack."""
        if guard > st.guard:
            set_guard(self.mm, st.addr, guard, _strategy(st.markers))
        else:
            clear_guard(self.mm, st.addr + guard, st.guard - guard, _strategy(st.markers))
        st.guard = guard

    def _name(self, st, name):
        """name_stack_maps(): under PROT_NONE the guard VMA stays unnamed."""
        skip = 0 if st.markers else st.guard
        name_vma(self.mm, st.addr + skip, st.size - skip, name)

    # -- thread exit: advise_stack_range(), queue_stack(), free_stacks() -------------
    def exit(self, st):
        """The thread returns: free its stack below SP, then cache it (or unmap the oldest)."""
        freesize = (st.size - EXIT_SP_FROM_TOP) & ~(C.PAGE_SIZE - 1)
        if freesize > PTHREAD_STACK_MIN:
            try:       # the return value is ignored (it fails with EINVAL on mlocked stacks)
                tolerant(self.mm).madvise(st.addr, freesize - PTHREAD_STACK_MIN,
                                          C.MADV_DONTNEED)
            except OSError:
                pass
        if self.decorate_maps:
            self._name(st, " glibc: unused stack")
        self.cache.insert(0, st)
        self.cache_bytes += st.size
        while self.cache_bytes > self.cache_size and self.cache:
            old = self.cache.pop()                      # the least recently queued
            self.cache_bytes -= old.size
            if self.batcher is not None:
                self.batcher.discard(old.addr)
            self.mm.munmap(old.addr, old.size)

    def _cached(self, size):
        """get_cached_stack(): exact size first, else the smallest that fits, <= 4x size."""
        best = None
        for st in self.cache:
            if st.size >= size:
                if st.size == size:
                    best = st
                    break
                if best is None or st.size < best.size:
                    best = st
        if best is None or best.size > 4 * size:
            return None
        self.cache.remove(best)
        self.cache_bytes -= best.size
        return best


def _strategy(markers):
    return Strategy.GUARD if markers else Strategy.PROT_NONE


# --------------------------------------------------------------------------------------
# W1: glibc threads
# --------------------------------------------------------------------------------------
def _glibc_closed_form(strategy, p):
    if p["guard_size"] == 0:
        return None
    if p["pattern"] == "serial":
        live = 1 if p["n"] else 0
    elif p["join"]:
        per = page_align(p["stack_size"]) + page_align(p["guard_size"])
        live = min(p["n"], p["cache_size"] // per)
    else:
        live = p["n"]
    if not Strategy(strategy).markers or p["mlockall_onfault"]:    # (2.42 falls back)
        return 2 * live
    return live if p["decorate_maps"] else min(live, 1)


@workload("glibc_threads", alias="W1", scale="n", closed_form=_glibc_closed_form, batched=True,
          defaults=dict(n=1000, stack_size=8 * MiB, guard_size=4 * KiB, pattern="concurrent",
                        join=False, decorate_maps=False, cache_size=40 * MiB, touch_pages=1,
                        mlockall_onfault=False),
          small=dict(n=1000))
def glibc_threads(run):
    """W1 glibc pthreads: <=2.41 PROT_NONE guard VMA vs 2.42 MADV_GUARD_INSTALL.

    pattern=concurrent: n threads alive at the end (join=1 then joins them all into the
    40 MiB stack cache); pattern=serial: n create/join cycles reusing one cached stack.
    guard_size 64K is aarch64's ARCH_MIN_GUARD_SIZE. mlockall_onfault=1 makes every new
    VMA VM_LOCKED, so MADV_GUARD_INSTALL fails with EINVAL and 2.42 falls back to
    PROT_NONE for the rest of the process.
    """
    p = run.p
    if p.mlockall_onfault:
        run.mm.mlockall(C.MCL_FUTURE | C.MCL_ONFAULT)
    nptl = Glibc(run, markers=run.strategy.markers, cache_size=p.cache_size,
                 decorate_maps=p.decorate_maps, touch_pages=p.touch_pages,
                 batcher=run.batcher())
    tid0 = 1000
    if p.pattern == "serial":
        for i in run.objects(p.n, "create/join"):
            st = nptl.create(tid0 + i, p.stack_size, p.guard_size)
            nptl.sync()
            nptl.exit(st)
        return
    if p.pattern != "concurrent":
        raise ValueError(f"pattern must be 'concurrent' or 'serial', not {p.pattern!r}")
    stacks = [nptl.create(tid0 + i, p.stack_size, p.guard_size)
              for i in run.objects(p.n, "pthread_create")]
    nptl.sync()
    run.observe()
    if p.join:
        for i in run.objects(len(stacks), "pthread_join"):
            nptl.exit(stacks[i])
        run.extra["cached_stacks"] = len(nptl.cache)


# --------------------------------------------------------------------------------------
# W2: musl create/exit churn
# --------------------------------------------------------------------------------------
@workload("musl_churn", alias="W2", scale="live",
          closed_form=lambda s, p: 2 * p["live"] if not Strategy(s).markers else min(p["live"], 1),
          defaults=dict(live=1000, cycles=1000, stack_size=128 * KiB, guard_size=8 * KiB,
                        tls_size=4 * KiB, touch_pages=1, seed=1),
          small=dict(live=500, cycles=1000))
def musl_churn(run):
    """W2 musl threads: 128 KiB stack + 8 KiB guard, no stack cache, create/exit churn.

    One mapping per thread holds guard + stack + TLS/TSD (src/thread/pthread_create.c:
    mmap PROT_NONE, mprotect all above the guard RW); exit munmaps it (no cache). `live`
    threads stay up while `cycles` times a random one exits and a new one is created.
    Markers (guard strategies) are hypothetical for musl.
    """
    p = run.p
    batcher = run.batcher()
    size = p.stack_size + p.tls_size

    def create():
        m = guarded_mapping(run.mm, size, p.guard_size, 0, run.strategy, batcher=batcher,
                            touch_pages=p.touch_pages)
        run.sync()                    # the thread starts: its guard must be in place
        return m

    threads = [create() for _ in run.objects(p.live, "pthread_create")]
    run.observe()
    for _ in run.objects(p.cycles, "exit+create"):
        i = run.rng.randrange(len(threads))
        release(run.mm, threads[i], batcher)
        threads[i] = create()
        run.observe()


# --------------------------------------------------------------------------------------
# W4: HotSpot JVM on glibc
# --------------------------------------------------------------------------------------
# globals_x86.hpp: StackRedPages 1, StackYellowPages 2, StackReservedPages 1 (x86-64 Linux)
RED, YELLOW, RESERVED = 1, 2, 1


def _jvm_closed_form(strategy, p):
    j, k = p["java_threads"], p["native_threads"]
    if not Strategy(strategy).markers:
        return 2 * j + 2 * k
    if p["hotspot_markers"]:
        return 1 if j + k else 0
    # glibc 2.42, HotSpot still mprotects its zone: natives form one run; the first Java
    # stack (mapped next, below it) merges into that run and its zone splits off.
    return 2 * j + (1 if k and not j else 0)


@workload("jvm", alias="W4", scale="java_threads", closed_form=_jvm_closed_form,
          defaults=dict(java_threads=200, native_threads=20, java_stack=1 * MiB,
                        native_stack=1 * MiB, hotspot_markers=True, overflows=0,
                        touch_pages=1, seed=4),
          small=dict(java_threads=1000, native_threads=20, overflows=100))
def jvm(run):
    """W4 HotSpot JVM: Java threads (glibc guard 0 + 4-page HotSpot zone) and native threads.

    Natives (GC, VM) come first with glibc's 1-page guard; Java threads ask glibc for guard
    0 and mprotect red+yellow+reserved at the low end (os_linux.cpp, stackOverflow.cpp).
    Under the guard strategies glibc is 2.42 and, with hotspot_markers=1, HotSpot also uses
    MADV_GUARD_INSTALL (hypothetical). `overflows` events disarm yellow+reserved of a random
    Java thread and re-arm it, as a caught StackOverflowError does.
    """
    p = run.p
    batcher = run.batcher()
    nptl = Glibc(run, markers=run.strategy.markers, touch_pages=p.touch_pages, batcher=batcher)
    zone_strategy = run.strategy if p.hotspot_markers else Strategy.PROT_NONE
    zone = (RED + YELLOW + RESERVED) * C.PAGE_SIZE
    for i in run.objects(p.native_threads, "native thread"):
        nptl.create(2000 + i, p.native_stack, C.PAGE_SIZE)
        nptl.sync()
    java = []
    for i in run.objects(p.java_threads, "java thread"):
        st = nptl.create(3000 + i, p.java_stack, 0)
        set_guard(run.mm, st.addr, zone, zone_strategy, batcher)
        run.sync()
        java.append(st)
    run.observe()
    yellow = RED * C.PAGE_SIZE                  # yellow + reserved sit just above red
    length = (YELLOW + RESERVED) * C.PAGE_SIZE
    for _ in run.objects(p.overflows if java else 0, "stack overflow"):
        st = java[run.rng.randrange(len(java))]
        clear_guard(run.mm, st.addr + yellow, length, zone_strategy)    # disable the zones
        run.observe()
        set_guard(run.mm, st.addr + yellow, length, zone_strategy)      # and re-arm them
