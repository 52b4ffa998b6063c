"""The C floor of batched one-page calls beside today's Python loop and the host kernel
(LiveMM.batch), in one process (notes/engine-shape.md section 5.2)."""
import sys
import time

import batch_floor
import ptengine as pt

P = pt.PAGE_SIZE
RW, ANON = pt.PROT_READ | pt.PROT_WRITE, pt.MAP_PRIVATE | pt.MAP_ANONYMOUS
N = 20000


def best(fn, rounds=7):
    return min(fn() for _ in range(rounds))


mm = pt.System().spawn()
base = mm.mmap(0, 3 * P, RW, ANON)
flags = mm.find_vma(base).flags
guard = best(lambda: batch_floor.guard_pairs(mm, base + P, N)[0]) / N
mmap = best(lambda: batch_floor.mmap_munmap_pairs(mm, 0, flags, N)) / N
parts = [min(x) for x in zip(*[batch_floor.parts(mm, 0x100000000, flags, N) for _ in range(5)])]
assert mm.map_count == 1


def loop_guard():
    t = time.perf_counter()
    for _ in range(N):
        mm.madvise(base + P, P, pt.MADV_GUARD_INSTALL)
        mm.madvise(base + P, P, pt.MADV_GUARD_REMOVE)
    return (time.perf_counter() - t) / N * 1e9


def loop_mmap():
    t = time.perf_counter()
    for _ in range(N):
        mm.munmap(mm.mmap(0, P, RW, ANON), P)
    return (time.perf_counter() - t) / N * 1e9


py_guard, py_mmap = best(loop_guard, 5), best(loop_mmap, 5)
k_guard = k_mmap = float("nan")
try:
    from ptengine import live
    with live.LiveMM() as k:
        kb = k.mmap(0, 3 * P, RW, ANON)
        slot = k.mmap(0, P, RW, ANON)
        k.munmap(slot, P)
        pairs = [("madvise", kb + P, P, pt.MADV_GUARD_INSTALL),
                 ("madvise", kb + P, P, pt.MADV_GUARD_REMOVE)] * 2000
        k_guard = best(lambda: k.batch(pairs)[1]) / 2000
        pairs = [("mmap", 0, P, RW, ANON), ("munmap", slot, P)] * 2000
        k_mmap = best(lambda: k.batch(pairs)[1]) / 2000
except Exception as e:                       # noqa: BLE001 - no kernel side: say so
    print("kernel side not measured:", e)
print(sys.executable)
print(f"guard install+remove, ns/pair: C floor {guard:.0f}, Python loop {py_guard:.0f}, "
      f"kernel {k_guard:.0f}")
print(f"mmap+munmap 1 page,   ns/pair: C floor {mmap:.0f}, Python loop {py_mmap:.0f}, "
      f"kernel {k_mmap:.0f}")
print("floor parts, ns: VMA() %.0f, insert+find+remove %.0f, zap+free %.0f, "
      "highest_gap via Python %.0f" % tuple(parts))
