"""Where mmap puts things: top-down placement, THP alignment, hints, FIXED_NOREPLACE and
the stack guard gap, on both backends (notes/kernel-probes.md §2).

The live server has its own mappings (vdso and vvar under mmap_base, its program near
4 MiB), so absolute addresses differ between backends: every expectation is written
relative to addresses the backend itself returned.
"""
import pytest

from ptengine.constants import (MAP_32BIT, MAP_FIXED_NOREPLACE, MAP_GROWSDOWN, MAP_NORESERVE,
                                MAP_PRIVATE, MAP_SHARED, PROT_NONE, PROT_READ, TASK_SIZE)

from .conftest import ANON, FAR, GiB, MiB, P, RW, Region, errno_of, ok

PMD = 2 * MiB
GAP = 256 * P                     # stack_guard_gap


def mmap0(mm, length, prot=RW, flags=ANON, fd=None, off=0):
    return mm.mmap(0, length, prot, flags, fd, off)


def lowest_topdown(mm):
    """The lowest VMA start of the top-down area (everything above 64 GiB here)."""
    return min(v.start for v in mm.vmas() if v.start >= 64 * GiB)


def test_consecutive_mmaps_pack_downwards(env):
    mm = env.mm
    top = lowest_topdown(mm) if env.live else mm.mmap_base   # the top of the free area
    a = mmap0(mm, P)
    assert a == top - P
    count = mm.map_count
    b = mmap0(mm, 2 * P)
    assert b == a - 2 * P and mm.map_count == count          # merged with a
    c = mmap0(mm, P, PROT_READ)
    assert c == b - P and mm.map_count == count + 1
    d = mmap0(mm, 3 * P, PROT_NONE)
    assert d == c - 3 * P


def test_hole_refilled_from_its_top(env):
    """The highest gap below mmap_base that fits wins, and is used from its top."""
    mm = env.mm
    prots = [RW, PROT_READ, RW, PROT_READ]                    # no two neighbours merge
    addrs = [mmap0(mm, 2 * P, prot) for prot in prots]
    assert addrs == [addrs[0] - 2 * P * i for i in range(4)]
    ok(mm.munmap(addrs[1], 2 * P))                            # a 2-page hole
    assert mmap0(mm, P, PROT_NONE) == addrs[1] + P
    assert mmap0(mm, P, PROT_NONE) == addrs[1]               # joins the one above
    assert mmap0(mm, P, PROT_NONE) == addrs[3] - P           # the hole is full
    ok(mm.munmap(addrs[2], 2 * P))
    assert mmap0(mm, 3 * P) == addrs[3] - 4 * P              # 2-page hole too small


def test_thp_alignment(env):
    """Anonymous private lengths that are a multiple of 2 MiB are placed 2 MiB-aligned at
    the highest aligned fit; other lengths are not; NORESERVE too; shared anon is not
    (shmem THP is off)."""
    mm = env.mm
    a = mmap0(mm, P)
    x = mmap0(mm, PMD)
    assert x == (a - PMD) & ~(PMD - 1)
    y = mmap0(mm, PMD + P)
    assert y == x - PMD - P                               # unaligned, right below x
    z = mmap0(mm, 2 * PMD)
    assert z == (y - 2 * PMD) & ~(PMD - 1)
    n = mmap0(mm, GiB, PROT_NONE, ANON | MAP_NORESERVE)
    assert n == (z - GiB) & ~(PMD - 1)
    s = mmap0(mm, PMD, RW, MAP_SHARED | 0x20)
    assert s == n - PMD                                   # shmem: no alignment
    # The highest hole that fits wins: z's alignment left exactly 2 MiB - 4 KiB above it.
    t = mmap0(mm, PMD - P)
    assert t == z + 2 * PMD


def highest_fit(limit, off=0):
    """The highest address <= limit that is congruent to the file offset modulo 2 MiB."""
    return limit - ((limit - off) % PMD)


def test_thp_alignment_of_files(env):
    """A regular file mapping covering a whole aligned 2 MiB of the file is placed so that
    address and file offset agree modulo 2 MiB (highest such fit); a memfd (shmem THP off)
    and a range with no whole aligned 2 MiB of the file are placed as they come."""
    mm = env.mm
    f = env.system.create_file("big", 8 * PMD)
    m = env.system.memfd_create("big")
    m.truncate(8 * PMD)
    a = mmap0(mm, P, PROT_READ)
    x = mmap0(mm, PMD, PROT_READ, MAP_PRIVATE, f, 0)
    assert x == highest_fit(a - PMD)
    q = mm.mmap(x - P, P, RW, ANON | MAP_FIXED_NOREPLACE)  # misalign what follows
    y = mmap0(mm, PMD, PROT_READ, MAP_SHARED, m, 0)
    assert (q, y) == (x - P, q - PMD)
    z = mmap0(mm, 2 * PMD, PROT_READ, MAP_SHARED, f, 16 * P)
    assert z == highest_fit(y - 2 * PMD, 16 * P)
    w = mmap0(mm, PMD, PROT_READ, MAP_SHARED, f, 16 * P)
    assert w == z - PMD                                   # [16P, 16P + 2 MiB): not whole
    v = mmap0(mm, PMD + P, PROT_READ, MAP_PRIVATE, f, 0)
    assert v == highest_fit(w - PMD - P)


def test_map_32bit(env):
    """MAP_32BIT allocates bottom-up from 1 GiB."""
    mm = env.mm
    a = mmap0(mm, P, RW, ANON | MAP_32BIT)
    b = mmap0(mm, P, PROT_READ, ANON | MAP_32BIT)
    assert (a, b) == (GiB, GiB + P)
    c = mmap0(mm, PMD, RW, ANON | MAP_32BIT)                # THP-aligned above them
    assert c == GiB + PMD
    d = mm.mmap(GiB + 0x10800, P, RW, ANON | MAP_32BIT)     # a hint: rounded down first
    assert d == GiB + 0x10000
    e = mm.mmap(3 * GiB, P, RW, ANON | MAP_32BIT)           # outside the window: ignored
    assert e == GiB + 2 * P


@pytest.mark.host_profile("mmap_min_addr")
def test_hints(env):
    mm = env.mm
    h = 0x300000000000
    assert mmap0(mm, P) != h
    assert mm.mmap(h, P, RW, ANON) == h                        # free: honoured
    top = mm.mmap(h, P, PROT_READ, ANON)                       # occupied: top-down
    assert top != h and top > h
    assert mm.mmap(h + 0x5234, P, PROT_READ, ANON) == h + 0x5000   # rounded down
    assert mm.mmap(h - P, 2 * P, PROT_READ, ANON) > h         # overlaps h: top-down
    assert mm.mmap(h + 0x101000, PMD, RW, ANON) == h + 0x101000     # not 2 MiB aligned
    assert mm.mmap(TASK_SIZE, P, RW, ANON) != TASK_SIZE        # past TASK_SIZE: ignored
    assert mm.mmap(TASK_SIZE - P, 2 * P, RW, ANON) < TASK_SIZE - P
    assert mm.mmap(1 << 47, P, RW, ANON) < TASK_SIZE
    assert mm.mmap(0x1000, P, RW, ANON) == 0x10000             # raised to mmap_min_addr
    assert mm.mmap(0x10000, P, PROT_READ, ANON) > 0x10000      # now occupied
    low = mm.mmap(0x800, P, RW, ANON)                          # rounds down to 0: no hint
    assert low > 64 * GiB


def test_fixed_noreplace(env):
    mm = env.mm
    r = Region(env)
    b = r.map(4, 4)
    assert errno_of(mm.mmap, b, 4 * P, RW, ANON | MAP_FIXED_NOREPLACE) == "EEXIST"
    assert errno_of(mm.mmap, b - P, 2 * P, RW, ANON | MAP_FIXED_NOREPLACE) == "EEXIST"
    assert errno_of(mm.mmap, b + 3 * P, 4 * P, RW, ANON | MAP_FIXED_NOREPLACE) == "EEXIST"
    assert errno_of(mm.mmap, b - P, 16 * P, RW, ANON | MAP_FIXED_NOREPLACE) == "EEXIST"
    assert r.spans() == [(4, 8)]
    assert mm.mmap(b + 4 * P, P, RW, ANON | MAP_FIXED_NOREPLACE) == b + 4 * P
    assert mm.mmap(b - P, P, RW, ANON | MAP_FIXED_NOREPLACE) == b - P
    assert r.spans() == [(3, 9)] and r.delta == 1
    # Unaligned: EINVAL before anything else.
    assert errno_of(mm.mmap, b + 1, P, RW, ANON | MAP_FIXED_NOREPLACE) == "EINVAL"


def test_stack_guard_gap_for_hints(env):
    """A hint must leave stack_guard_gap (256 pages) free below a VM_GROWSDOWN VMA; MAP_FIXED
    variants ignore the gap; above it there is none (no GROWSUP on x86)."""
    mm = env.mm
    g = FAR + GiB
    assert mm.mmap(g, 4 * P, RW, ANON | MAP_GROWSDOWN | MAP_FIXED_NOREPLACE) == g
    for hint in (g - P, g - GAP, g - 2 * P):
        got = mm.mmap(hint, P, RW, ANON)
        assert got != hint and not g - GAP <= got < g, hex(hint)
        ok(mm.munmap(got, P))
    assert mm.mmap(g - GAP - P, P, RW, ANON) == g - GAP - P       # ends right at the gap
    assert mm.mmap(g + 4 * P, P, RW, ANON) == g + 4 * P           # above: fine
    assert mm.mmap(g - P, P, RW, ANON | MAP_FIXED_NOREPLACE) == g - P
    # A growsdown VMA placed by hint right above a normal one: its own gap is not enforced.
    h = FAR + 2 * GiB
    assert mm.mmap(h, P, RW, ANON | MAP_FIXED_NOREPLACE) == h
    assert mm.mmap(h + P, 4 * P, RW, ANON | MAP_GROWSDOWN) == h + P


def test_topdown_skips_guard_gap(env):
    """Top-down, a growsdown VMA is placed like any other, but later searches keep the 256
    pages under it free. The search finds a hole first and only then looks at the VMA above
    it: a hole under a growsdown VMA that the request would fit restarts the search below
    the whole guard gap (skipping the VMAs and holes inside it); one too small for the
    request is passed over like any other, and the next hole down is used.

        c . . . g2g2g2g2 . . . b ........(256 pages)........ g g g g a
    """
    mm = env.mm
    a = mmap0(mm, P)
    g = mmap0(mm, 4 * P, RW, ANON | MAP_GROWSDOWN)
    assert g == a - 4 * P
    b = mmap0(mm, P, PROT_READ)
    assert b == g - GAP - P
    g2 = mm.mmap(b - 7 * P, 4 * P, RW, ANON | MAP_GROWSDOWN | MAP_FIXED_NOREPLACE)
    c = mm.mmap(g2 - 4 * P, P, PROT_READ, ANON | MAP_FIXED_NOREPLACE)
    assert (g2, c) == (b - 7 * P, b - 11 * P)
    assert mmap0(mm, P, PROT_NONE) == b - P              # under b: usable
    assert mmap0(mm, 2 * P, PROT_NONE) == b - 3 * P      # joins it; the hole is full
    assert mmap0(mm, 4 * P, RW) == c - 4 * P             # 3 pages under g2: too small
    assert mmap0(mm, P, PROT_READ) == g2 - GAP - P       # fits there: below the gap
    assert not [v for v in mm.vmas() if g2 - 3 * P <= v.start < g2]


def test_mremap_move_placement(env):
    """mremap(MAYMOVE) picks a new place as mmap(0) would (top-down, and THP alignment for
    a 2 MiB-multiple anon VMA)."""
    mm = env.mm
    r = Region(env)
    r.map(0, 4), r.map(4, 1, PROT_READ)
    a = mmap0(mm, P, PROT_NONE)
    new = mm.mremap(r.addr(0), 4 * P, 8 * P, 1)
    assert new == a - 8 * P
    r.map(16, 512), r.map(16 + 512, 1, PROT_READ)       # it cannot grow in place
    new2 = mm.mremap(r.addr(16), PMD, 2 * PMD, 1)
    assert new2 == (new - 2 * PMD) & ~(PMD - 1)


# --- random sequences, address for address ---------------------------------------------------

def placement_sequence(mm, seed, f, steps=120):
    """A seeded random mix of mmap(0) (anon of assorted sizes, protections and flags, and
    file mappings at assorted offsets), munmap, hinted mmap and mremap(MAYMOVE); returns
    every address returned (or errno)."""
    import random
    rnd = random.Random(seed)
    held, out = [], []
    for _ in range(steps):
        op = rnd.random()
        try:
            if op < 0.5 or not held:
                length = rnd.choice([1, 1, 2, 3, 8, 16, 511, 512, 513, 1024]) * P
                flags = ANON | rnd.choice([0, 0, 0, MAP_GROWSDOWN, MAP_NORESERVE, MAP_32BIT])
                held.append((mm.mmap(0, length, rnd.choice([RW, PROT_READ, PROT_NONE]), flags),
                             length))
            elif op < 0.62:
                length = rnd.choice([1, 512, 513, 1024]) * P
                held.append((mm.mmap(0, length, PROT_READ, rnd.choice([MAP_SHARED, MAP_PRIVATE]),
                                     f, rnd.choice([0, 1, 16, 512]) * P), length))
            elif op < 0.8:
                addr, length = held.pop(rnd.randrange(len(held)))
                ok(mm.munmap(addr, length))
                out.append("unmapped")
                continue
            elif op < 0.9:
                addr, length = rnd.choice(held)
                hint = addr + rnd.choice([-300, -2, -1, 0, 1, length // P, length // P + 1]) * P
                length = rnd.choice([1, 2, 512]) * P
                held.append((mm.mmap(hint, length, PROT_READ, ANON), length))
            else:
                addr, length = held.pop(rnd.randrange(len(held)))
                new = rnd.choice([2 * length, length + P, length])
                held.append((mm.mremap(addr, length, new, 1), new))
            out.append(held[-1][0])
        except OSError as e:
            out.append(e.errno)
    return out


def test_random_placement_matches_the_kernel():
    """The same random sequences on a live process and on a simulated one given the live
    server's own mappings near the top (vvar, vdso as unmergeable file mappings, the stack
    as a growsdown VMA): every returned address must be the same."""
    from .conftest import make_system
    kernel_system = make_system("kernel")
    try:
        kernel = {}
        for seed in range(12):
            mm = kernel_system.spawn()
            own = [(v.start, v.end, v.name) for v in mm.vmas() if v.start > 64 * GiB]
            kernel[seed] = placement_sequence(mm, seed, kernel_system.create_file(
                f"data{seed}", 8 * MiB))
            mm.close()
    finally:
        kernel_system.close()
    for seed, expected in kernel.items():
        system = make_system("ptengine")
        mm = system.spawn()
        stand_in = system.create_file("vdso", 64 * P)
        for start, end, name in own:
            if name == "[stack]":
                mm.mmap(start, end - start, RW, ANON | MAP_GROWSDOWN | MAP_FIXED_NOREPLACE)
            else:
                mm.mmap(start, end - start, PROT_READ, MAP_PRIVATE | MAP_FIXED_NOREPLACE,
                        stand_in)
        got = placement_sequence(mm, seed, system.create_file(f"data{seed}", 8 * MiB))
        first = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), None)
        assert first is None, (seed, first, got[first], expected[first])
