"""Android app processes, W3 (mirrors no kernel file: bionic, ART and a device of apps).

Per thread, as bionic's pthread_create.cpp (aosp-mirror/platform_bionic) lays it out:
- __allocate_thread_mapping: [guard][stack][static TLS + pthread_internal_t][top guard],
  mmap PROT_NONE|MAP_NORESERVE, mprotect the middle RW, name it "stack_and_tls:<tid>";
- __init_alternate_signal_stack: mmap RW, mprotect the lowest page PROT_NONE, name the
  whole "thread signal stack";
- __init_shadow_call_stack (arm64): a 16 MiB PROT_NONE reservation with the 8 KiB shadow
  stack made RW at a random 8 KiB-aligned offset (old code: 3 VMAs); the newer variant
  makes everything but the last page RW (2 VMAs);
- ART Java threads: Thread::InstallImplicitProtection mprotects the page just above
  bionic's guard PROT_NONE.
Under the guard strategies every one of these guards becomes MADV_GUARD_INSTALL markers on
an RW mapping named as a whole (hypothetical: no bionic GM adoption exists).

Both models run under the `android` host profile: Android kernels have CONFIG_ANON_VMA_NAME,
so the names keep stacks (and their marker runs) apart; the figures depend on that.
"""
from ... import constants as C
from ..blocks import ANON, RW, KiB, MiB, Strategy, guarded_mapping, name_vma, set_guard
from ..recorder import align_up
from ..registry import workload

SIGNAL_STACK_SIZE = 32 * KiB + C.PAGE_SIZE          # LP64: SIGSTKSZ-ish + guard
SCS_GUARD_REGION_SIZE = 16 * MiB
SCS_SIZE = 8 * KiB
ART_PROTECTED_SIZE = 4 * KiB                        # kStackOverflowProtectedSize (no ASan)
SCS_VMAS = {"old": 3, "new": 2, "none": 0}


def background(mm, count):
    """`count` VMAs standing for shared libraries: [r--][r-x][r--][rw-] per 4-page 'DSO'
    (3 calls for 4 VMAs; anonymous, so both backends can map them)."""
    page = C.PAGE_SIZE
    sizes = [count % 4] * bool(count % 4) + [4] * (count // 4)   # a partial DSO goes first
    for n in sizes:
        base = mm.mmap(0, n * page, C.PROT_READ, ANON)
        if n > 1:
            mm.mprotect(base + page, page, C.PROT_READ | C.PROT_EXEC)
        if n > 3:
            mm.mprotect(base + 3 * page, page, RW)


def bionic_thread(run, mm, tid, *, java, batcher=None):
    """pthread_create + __pthread_start on bionic, plus ART's protection for Java threads."""
    p, strategy = run.p, run.strategy
    flags = ANON | C.MAP_NORESERVE
    main = guarded_mapping(mm, p.stack_size + p.tls_size, p.guard_size, C.PAGE_SIZE, strategy,
                           f"stack_and_tls:{tid}", batcher=batcher, flags=flags,
                           touch_pages=p.touch_pages)
    if java:
        set_guard(mm, main.data, ART_PROTECTED_SIZE, strategy, batcher)

    sig = mm.mmap(0, SIGNAL_STACK_SIZE, RW, flags)
    set_guard(mm, sig, C.PAGE_SIZE, strategy, batcher)
    name_vma(mm, sig, SIGNAL_STACK_SIZE, "thread signal stack")

    if p.scs != "none":
        region = SCS_GUARD_REGION_SIZE
        if strategy.markers:
            base = mm.mmap(0, region, RW, flags)
        else:
            base = mm.mmap(0, region, C.PROT_NONE, ANON)
        if p.scs == "old":
            aligned = align_up(base, SCS_SIZE)
            scs = aligned + run.rng.randrange(region // SCS_SIZE - 1) * SCS_SIZE
            opened = [(scs, SCS_SIZE)]
        else:
            scs = base
            opened = [(base, region - C.PAGE_SIZE)]
        if strategy.markers:
            cursor = base
            for start, length in opened:
                if start > cursor:
                    set_guard(mm, cursor, start - cursor, strategy, batcher)
                cursor = start + length
            if cursor < base + region:
                set_guard(mm, cursor, base + region - cursor, strategy, batcher)
        else:
            for start, length in opened:
                mm.mprotect(start, length, RW)
        if p.touch_pages:
            mm.touch(scs, C.PAGE_SIZE, write=True)     # the shadow stack grows up from here
    run.sync()


def _java(p, t):
    return t < round(p["java_fraction"] * p["threads"])


def _app_vmas(strategy, p):
    t = p["threads"]
    java = sum(_java(p, i) for i in range(t))
    scs = SCS_VMAS[p["scs"]]
    if Strategy(strategy).markers:
        return p["background"] + t * (2 + (1 if scs else 0))
    return p["background"] + t * (3 + 2 + scs) + java


APP_DEFAULTS = dict(threads=60, java_fraction=0.0, background=0, scs="old",
                    stack_size=992 * KiB, guard_size=4 * KiB, tls_size=16 * KiB,
                    touch_pages=1, seed=3)


def _app(run, mm, pid):
    p = run.p
    if p.scs not in SCS_VMAS:
        raise ValueError(f"scs must be one of {', '.join(SCS_VMAS)}, not {p.scs!r}")
    batcher = run.batcher(mm)
    for t in run.objects(p.threads, f"process {pid}: thread"):
        bionic_thread(run, mm, pid * 1000 + t, java=_java(vars(p), t), batcher=batcher)


@workload("android_app", alias="W3", scale="threads", closed_form=_app_vmas,
          defaults=dict(APP_DEFAULTS), small=dict(threads=200),
          profile="android", profile_fields=("anon_vma_name",))
def android_app(run):
    """W3 Android app process: bionic thread mappings + signal stacks + SCS (+ ART).

    scs: old (3 VMAs), new (2) or none (x86). java_fraction of the threads get ART's
    implicit protection page. guard_size 64K is GrapheneOS's stack guard. `background`
    VMAs stand for the process's libraries. The closed form counts every guard apart: where
    placement puts one thread mapping right below another (the 16 MiB SCS reservations are
    2 MiB-aligned and leave gaps), their unnamed PROT_NONE guards merge, one VMA less.
    """
    background(run.mm, run.p.background)
    _app(run, run.mm, 1)


@workload("android_device", alias="W3d", scale="processes", batched=True,
          closed_form=lambda s, p: p["processes"] * _app_vmas(s, p),
          defaults=dict(APP_DEFAULTS, processes=20, background=1800),
          small=dict(processes=8), profile="android", profile_fields=("anon_vma_name",))
def android_device(run):
    """W3 device: a zygote with `background` VMAs forks `processes` apps of `threads` threads.

    Measured over the app processes (the zygote is the template, reported in extra).
    With the defaults (background 1800, 60 threads, old SCS, no Java threads) the marker
    strategies save 5 of 8 VMAs per thread: 300 / 2280 = 13% of all VMAs, the reduction
    the guard-regions cover letter reported for an idle Android system.
    """
    zygote = run.mm
    background(zygote, run.p.background)
    run.extra["zygote_map_count"] = zygote.map_count
    run.processes = []
    for i in run.objects(run.p.processes, "fork app"):
        app = zygote.fork()
        run.processes.append(app)
        _app(run, app, 100 + i)
