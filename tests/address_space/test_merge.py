"""VMA merge and split scenarios, on real syscalls and both backends.

Ported from the kernel's tools/testing/vma (merge tests: new-range merges, merges of a
modified existing range, anon_vma compatibility, sticky flags) and from the merge probes
of notes/kernel-probes.md §4. Each step draws the region before/after (one column per page,
a letter per VMA, '.' for a hole, '*' for the range acted on), then asserts the map_count
delta since the region was proven empty and the VMA list: (first page, end page, perms,
VmFlags).
"""
import itertools

import pytest

from ptengine.constants import (MADV_DOFORK, MADV_DONTFORK, MADV_GUARD_INSTALL,
                                MADV_GUARD_REMOVE, MADV_HUGEPAGE, MADV_WIPEONFORK,
                                MAP_GROWSDOWN, MAP_NORESERVE, MAP_PRIVATE, MAP_SHARED,
                                MLOCK_ONFAULT, PROT_EXEC, PROT_NONE, PROT_READ)

from .conftest import ANON, ANON_NONE, ANON_R_AC, P, RW, SHARED_RW, ok, ro, rw

RWX = RW | PROT_EXEC
GU = "rd wr mr mw me gu ac"               # anon RW with VM_MAYBE_GUARD
FILE_SHARED_GU = "rd wr sh mr mw me ms gu"


# --- new mappings (tools/testing/vma: test_merge_new) --------------------------------------

def test_merge_new_untouched_anon(region):
    """Untouched private anon VMAs (no anon_vma) merge with whatever they touch."""
    r = region
    #  0123456789abc
    #  AA.B.......C
    r.map(0, 2), r.map(3, 1), r.map(0xb, 1)
    assert r.delta == 3
    #  AA.B...**..C      no neighbour: a fourth VMA
    r.map(7, 2)
    assert r.spans() == [(0, 2), (3, 4), (7, 9), (0xb, 0xc)] and r.delta == 4
    #  AA*B...DD..C      merges both sides: A grows over B
    r.map(2, 1)
    assert r.spans() == [(0, 4), (7, 9), (0xb, 0xc)] and r.delta == 3
    #  AAAA*..DD..C      merges left
    r.map(4, 1)
    assert r.spans() == [(0, 5), (7, 9), (0xb, 0xc)] and r.delta == 3
    #  AAAAA.*DD..C      merges right: D starts earlier
    r.map(6, 1)
    assert r.spans() == [(0, 5), (6, 9), (0xb, 0xc)] and r.delta == 3
    #  AAAAA*DDD..C      both
    r.map(5, 1)
    assert r.spans() == [(0, 9), (0xb, 0xc)] and r.delta == 2
    #  AAAAAAAAA.*C      right
    r.map(0xa, 1)
    assert r.spans() == [(0, 9), (0xa, 0xc)] and r.delta == 2
    #  AAAAAAAAA*CC      both
    r.map(9, 1)
    assert r.layout() == [rw(0, 0xc)] and r.delta == 1


@pytest.mark.parametrize("sticky", [s for n in range(4) for s in itertools.combinations("ABC", n)],
                         ids=lambda s: "sticky-" + ("".join(s) or "none"))
@pytest.mark.host_profile("maybe_guard")
def test_merge_new_sticky(env, region, sticky):
    """The same walk on a MAP_SHARED file (offsets follow the pages), with a guard installed
    in some of A, B, C first: VM_MAYBE_GUARD (gu) never blocks a merge and the merged VMA
    carries it if any part had it. A shared file VMA has no anon_vma, so only gu differs."""
    r = region
    f = env.system.create_file("merge", 16 * P)

    def fmap(page, n):
        return r.map(page, n, RW, MAP_SHARED, f, off=page)

    fmap(0, 2), fmap(3, 1), fmap(0xb, 1)
    for name in sticky:
        r.madvise({"A": 0, "B": 3, "C": 0xb}[name], 1, MADV_GUARD_INSTALL)

    def flags(*members):
        return FILE_SHARED_GU if set(members) & set(sticky) else SHARED_RW

    fmap(7, 2)                                   # AA.B...DD..C
    assert r.delta == 4
    fmap(2, 1)                                   # AA*B -> A
    fmap(4, 1)
    fmap(6, 1)
    fmap(5, 1)                                   # A + D
    assert r.layout() == [(0, 9, "rw-s", flags("A", "B")), (0xb, 0xc, "rw-s", flags("C"))]
    assert r.delta == 2
    fmap(0xa, 1)
    fmap(9, 1)
    assert r.layout() == [(0, 0xc, "rw-s", flags("A", "B", "C"))] and r.delta == 1


def test_merge_new_beside_faulted(region):
    """A new VMA joins a faulted neighbour on either side (probes B, C); filling the hole
    between two VMAs that were faulted apart joins only the left one (D2, D3); if at most
    one neighbour has an anon_vma, all three become one (E, F, G)."""
    r = region
    # B: [0,2) faulted, then [2,4) mapped after it.
    r.map(0, 2), r.touch(0), r.map(2, 2)
    assert r.layout() == [rw(0, 4)] and r.delta == 1
    r.munmap(0, 4)
    # C: [2,4) faulted, then [0,2) mapped below it.
    r.map(2, 2), r.touch(2), r.map(0, 2)
    assert r.layout() == [rw(0, 4)] and r.delta == 1
    r.munmap(0, 4)
    # D: AA.BB, each faulted while the hole separated them: two anon_vmas.
    r.map(0, 2), r.touch(0), r.map(3, 2), r.touch(3)
    #  AA*BB  -> the filler joins A only
    r.map(2, 1)
    assert r.layout() == [rw(0, 3), rw(3, 5)] and r.delta == 2
    r.touch(2)                                   # faulting the filler changes nothing
    assert r.layout() == [rw(0, 3), rw(3, 5)] and r.delta == 2
    r.munmap(0, 5)
    for faulted in ((0,), (3,), ()):             # E, F, G
        r.map(0, 2), r.map(3, 2)
        for page in faulted:
            r.touch(page)
        r.map(2, 1)
        assert r.layout() == [rw(0, 5)] and r.delta == 1, faulted
        r.munmap(0, 5)
    assert r.delta == 0


def test_anon_vma_shared_by_neighbours_faulted_adjacent(region):
    """anon_vma reuse: B is faulted while it touches A, so it takes A's anon_vma
    (find_mergeable_anon_vma) and the two merge once their flags agree. B faulted while a
    hole separated it from A has its own: later, with the hole filled and the flags equal,
    the two stay apart although their pgoffs are contiguous."""
    r = region
    #  AABB      A rw faulted, B rwx faulted while adjacent
    r.map(0, 2), r.touch(0)
    r.map(2, 2, RWX), r.touch(2)
    assert r.layout() == [rw(0, 2), (2, 4, "rwxp", "rd wr ex mr mw me ac")]
    r.mprotect(2, 2, RW)
    assert r.layout() == [rw(0, 4)] and r.delta == 1
    r.munmap(0, 4)
    #  AA.BB     B rwx faulted apart; then [2,3) rwx fills the hole (joins B, untouched)
    r.map(0, 2), r.touch(0)
    r.map(3, 2, RWX), r.touch(3)
    r.map(2, 1, RWX)
    assert r.layout() == [rw(0, 2), (2, 5, "rwxp", "rd wr ex mr mw me ac")]
    r.mprotect(2, 3, RW)
    assert r.layout() == [rw(0, 2), rw(2, 5)] and r.delta == 2


def test_anon_vma_non_mergeable(region):
    """tools/testing/vma test_anon_vma_non_mergeable: modifying V so that it could merge
    with both P and N, whose anon_vmas differ, merges it with P only.

        0123456789          0123456789
        PPPVVVVNN     ->    PPPPPPPNN
    """
    r = region
    r.map(0, 3), r.touch(0)
    r.map(7, 2), r.touch(7)                      # faulted while apart: its own anon_vma
    r.map(3, 4, PROT_READ)
    assert r.layout() == [rw(0, 3), ro(3, 7), rw(7, 9)] and r.delta == 3
    r.mprotect(3, 4, RW)
    assert r.layout() == [rw(0, 7), rw(7, 9)] and r.delta == 2


def test_anon_vma_of_middle_survives_the_merge(region):
    """tools/testing/vma test_dup_anon_vma: P and N untouched, V faulted; once V merges
    with both, the whole VMA has V's anon_vma. It shows through VM_ACCOUNT, which
    mprotect(PROT_READ) drops only from an anon VMA without one."""
    r = region
    #  PPPVVVVNN   nothing faulted: read-only drops ac everywhere
    r.map(0, 3), r.map(3, 4, RWX), r.map(7, 2)
    r.mprotect(3, 4, RW)
    assert r.layout() == [rw(0, 9)] and r.delta == 1
    r.mprotect(0, 9, PROT_READ)
    assert r.layout() == [ro(0, 9)]
    r.munmap(0, 9)
    #  PPPVVVVNN   V faulted while rwx, then made RW: one VMA that keeps ac when read-only
    r.map(0, 3), r.map(3, 4, RWX), r.touch(3), r.map(7, 2)
    assert r.spans() == [(0, 3), (3, 7), (7, 9)]
    r.mprotect(3, 4, RW)
    assert r.layout() == [rw(0, 9)] and r.delta == 1
    r.mprotect(0, 9, PROT_READ)
    assert r.layout() == [ro(0, 9, ANON_R_AC)] and r.delta == 1


# --- modifying an existing range (tools/testing/vma: test_merge_existing) -------------------

@pytest.mark.parametrize("sticky", list(itertools.product((False, True), repeat=3)),
                         ids=lambda s: "".join("PVN"[i] if x else "-" for i, x in enumerate(s)))
@pytest.mark.host_profile("maybe_guard")
def test_merge_existing(env, region, sticky):
    """mprotect makes (part of) V equal to its neighbour(s), on a MAP_SHARED file so that no
    anon_vma is involved. `sticky` says which of P, V, N carry gu (a guard installed and
    removed again): it never prevents the merge and the merged VMA has it if any part did."""
    r = region
    f = env.system.create_file("existing", 16 * P)
    p_gu, v_gu, n_gu = sticky

    def fmap(page, n, prot=RW, gu=False):
        r.map(page, n, prot, MAP_SHARED, f, off=page)
        if gu:
            r.madvise(page, 1, MADV_GUARD_INSTALL)
            r.madvise(page, 1, MADV_GUARD_REMOVE)

    def rws(a, b, *gus):
        return (a, b, "rw-s", FILE_SHARED_GU if any(gus) else SHARED_RW)

    def ros(a, b, gu):
        return (a, b, "r--s", "rd sh mr mw me ms" + (" gu" if gu else ""))

    def reset():
        r.munmap(0, 16)
        assert r.delta == 0

    # Merge right, partial span:   ..VVVVNNN -> ..VNNNNNN   (V [3,6) changed)
    fmap(2, 4, PROT_READ, v_gu), fmap(6, 3, RW, n_gu)
    r.mprotect(3, 3, RW)
    assert r.layout() == [ros(2, 3, v_gu), rws(3, 9, v_gu, n_gu)] and r.delta == 2
    reset()
    # Merge right, full span:      ..VVVVNNN -> ..NNNNNNN
    fmap(2, 4, PROT_READ, v_gu), fmap(6, 3, RW, n_gu)
    r.mprotect(2, 4, RW)
    assert r.layout() == [rws(2, 9, v_gu, n_gu)] and r.delta == 1
    reset()
    # Merge left, partial span:    PPPVVVV -> PPPPPPV       (V [3,6) changed)
    fmap(0, 3, RW, p_gu), fmap(3, 4, PROT_READ, v_gu)
    r.mprotect(3, 3, RW)
    assert r.layout() == [rws(0, 6, p_gu, v_gu), ros(6, 7, v_gu)] and r.delta == 2
    reset()
    # Merge left, full span:       PPPVVVV -> PPPPPPP
    fmap(0, 3, RW, p_gu), fmap(3, 4, PROT_READ, v_gu)
    r.mprotect(3, 4, RW)
    assert r.layout() == [rws(0, 7, p_gu, v_gu)] and r.delta == 1
    reset()
    # Merge both:                  PPPVVVVNN -> PPPPPPPPP
    fmap(0, 3, RW, p_gu), fmap(3, 4, PROT_READ, v_gu), fmap(7, 2, RW, n_gu)
    r.mprotect(3, 4, RW)
    assert r.layout() == [rws(0, 9, p_gu, v_gu, n_gu)] and r.delta == 1
    reset()
    # Ranges that touch neither neighbour only split, and re-merge when undone:
    #   PPPVVVVVNN with V [3,8); ranges [4,5) [5,6) [6,7) [4,7) [4,6) [5,7)
    fmap(0, 3, RW, p_gu), fmap(3, 5, PROT_READ, v_gu), fmap(8, 2, RW, n_gu)
    before = r.layout()
    for a, b in ((4, 5), (5, 6), (6, 7), (4, 7), (4, 6), (5, 7)):
        r.mprotect(a, b - a, RW)
        assert r.layout() == [rws(0, 3, p_gu), ros(3, a, v_gu), rws(a, b, v_gu),
                              ros(b, 8, v_gu), rws(8, 10, n_gu)], (a, b)
        assert r.delta == 5
        r.mprotect(a, b - a, PROT_READ)
        assert r.layout() == before and r.delta == 3


# --- mprotect: splitting into 2 and 3, re-merging, VM_ACCOUNT ------------------------------

def test_mprotect_split_and_remerge(region):
    """probes H, H2, I, I2: 4 untouched pages, mprotect [1,3) read-only splits in 3 (the
    read-only part loses VM_ACCOUNT: no anon_vma); back to RW they merge again."""
    r = region
    r.map(0, 4)
    #  A**A
    r.mprotect(1, 2, PROT_READ)
    assert r.layout() == [rw(0, 1), ro(1, 3), rw(3, 4)] and r.delta == 3
    r.mprotect(1, 2, RW)
    assert r.layout() == [rw(0, 4)] and r.delta == 1
    #  **AA   split in 2 at the start, then at the end
    r.mprotect(0, 2, PROT_READ)
    assert r.layout() == [ro(0, 2), rw(2, 4)] and r.delta == 2
    r.mprotect(2, 2, PROT_READ)
    assert r.layout() == [ro(0, 4)] and r.delta == 1
    r.mprotect(3, 1, RW)
    assert r.layout() == [ro(0, 3), rw(3, 4)] and r.delta == 2
    r.mprotect(0, 4, RW)
    assert r.layout() == [rw(0, 4)] and r.delta == 1


def test_mprotect_faulted_keeps_account(region):
    """probes I..I5: once faulted (anon_vma) a read-only part keeps VM_ACCOUNT, so all
    pieces merge again whatever the order of the changes."""
    r = region
    r.map(0, 4), r.touch(0, 4)
    r.mprotect(1, 2, PROT_READ)
    assert r.layout() == [rw(0, 1), ro(1, 3, ANON_R_AC), rw(3, 4)] and r.delta == 3
    r.mprotect(1, 2, RW)
    assert r.layout() == [rw(0, 4)] and r.delta == 1
    r.mprotect(0, 4, PROT_READ)
    assert r.layout() == [ro(0, 4, ANON_R_AC)] and r.delta == 1
    r.mprotect(0, 2, RW)
    assert r.layout() == [rw(0, 2), ro(2, 4, ANON_R_AC)] and r.delta == 2
    r.mprotect(2, 2, RW)
    assert r.layout() == [rw(0, 4)] and r.delta == 1


def test_vm_account_dropped_when_untouched_made_read_only(region):
    """VM_ACCOUNT: dropped by RW->R only for an anon VMA without anon_vma (H vs I); a
    read-only mapping gets it when made writable (J); NORESERVE never has it (K); a PROT_NONE
    mapping neither. A zero-page read fault gives no anon_vma, so `ac` still goes."""
    r = region
    r.map(0, 2), r.map(2, 2, PROT_READ)                       # J
    assert r.layout() == [rw(0, 2), ro(2, 4)] and r.delta == 2
    r.mprotect(2, 2, RW)
    assert r.layout() == [rw(0, 4)] and r.delta == 1
    r.map(4, 2, RW, ANON | MAP_NORESERVE)                     # K
    assert r.layout() == [rw(0, 4), rw(4, 6, "rd wr mr mw me nr")] and r.delta == 2
    r.mprotect(4, 2, PROT_READ)
    r.mprotect(4, 2, RW)
    assert r.layout()[1] == rw(4, 6, "rd wr mr mw me nr")
    r.touch(0, 4, write=False)                                # zero pages only
    r.mprotect(0, 4, PROT_NONE)
    assert r.layout()[0] == (0, 4, "---p", ANON_NONE)
    r.mprotect(0, 4, RW)
    assert r.layout() == [rw(0, 4), rw(4, 6, "rd wr mr mw me nr")]


# --- flag differences that block, and re-merge (probes L, M, O, U) -------------------------

@pytest.mark.parametrize("apply, undo, flags", [
    (("mlock",), ("munlock",), "rd wr mr mw me lo ac"),
    (("mlock2",), ("munlock",), "rd wr mr mw me lo lf ac"),
    ((MADV_DONTFORK,), (MADV_DOFORK,), "rd wr mr mw me dc ac"),
    ((MADV_WIPEONFORK,), None, "rd wr mr mw me ac wf"),
    ((MADV_HUGEPAGE,), None, "rd wr mr mw me ac hg"),
    (("mseal",), None, "rd wr mr mw me ac sl"),
], ids=["mlock", "mlock2-onfault", "dontfork", "wipeonfork", "hugepage", "mseal"])
def test_flag_change_splits_and_blocks_merge(region, apply, undo, flags):
    """An attribute on the middle of a VMA splits it in 3 (L, M, O); undoing it merges all
    back (L2, M2); a new mapping next to a VMA with the attribute stays apart (U, U2, U3, O2)."""
    r = region
    mm = r.mm

    def do(action, page, n):
        kind = action[0]
        if kind == "mlock":
            ok(mm.mlock(r.addr(page), n * P))
        elif kind == "mlock2":
            ok(mm.mlock(r.addr(page), n * P, MLOCK_ONFAULT))
        elif kind == "munlock":
            ok(mm.munlock(r.addr(page), n * P))
        elif kind == "mseal":
            ok(mm.mseal(r.addr(page), n * P))
        else:
            r.madvise(page, n, kind)

    r.map(0, 4)
    #  A**A
    do(apply, 1, 2)
    assert r.layout() == [rw(0, 1), rw(1, 3, flags), rw(3, 4)] and r.delta == 3
    if undo:
        do(undo, 1, 2)
        assert r.layout() == [rw(0, 4)] and r.delta == 1
    #  XX*     a new mapping after a VMA with the attribute
    r.map(8, 2)
    do(apply, 8, 2)
    r.map(10, 2)
    assert r.layout()[-2:] == [rw(8, 10, flags), rw(10, 12)]


def test_prot_and_growsdown_differences_block(region):
    """U4, U5, U6: exec and growsdown differences keep neighbours apart, both ways."""
    r = region
    r.map(0, 2), r.map(2, 2, RWX)
    assert r.layout() == [rw(0, 2), (2, 4, "rwxp", "rd wr ex mr mw me ac")]
    r.map(8, 2, RW, ANON | MAP_GROWSDOWN), r.map(10, 2)
    r.map(0x12, 2), r.map(0x10, 2, RW, ANON | MAP_GROWSDOWN)
    assert r.layout()[2:] == [rw(8, 10, "rd wr mr mw me gd ac"), rw(10, 12),
                              rw(0x10, 0x12, "rd wr mr mw me gd ac"), rw(0x12, 0x14)]
    assert r.delta == 6


# --- VM_MAYBE_GUARD (gu) is sticky (probes N..N9) ------------------------------------------

@pytest.mark.host_profile("maybe_guard")
def test_maybe_guard_is_ored_not_compared(region):
    r = region
    r.map(0, 4)
    r.madvise(0, 1, MADV_GUARD_INSTALL)                       # N: the whole VMA gets gu
    assert r.layout() == [rw(0, 4, GU)]
    r.map(4, 2)                                               # N2: joins, gu on all
    assert r.layout() == [rw(0, 6, GU)] and r.delta == 1
    r.map(6, 2), r.madvise(6, 1, MADV_GUARD_INSTALL)          # N3
    assert r.layout() == [rw(0, 8, GU)] and r.delta == 1
    r.madvise(0, 8, MADV_GUARD_REMOVE)                        # gu stays after removal
    assert r.layout() == [rw(0, 8, GU)]
    r.munmap(0, 8)
    r.map(2, 2), r.madvise(2, 1, MADV_GUARD_INSTALL), r.map(0, 2)   # N4: mapped below
    assert r.layout() == [rw(0, 4, GU)] and r.delta == 1
    r.munmap(0, 4)
    r.map(0, 2), r.map(3, 2), r.madvise(3, 1, MADV_GUARD_INSTALL)   # N5: fill the hole
    r.map(2, 1)
    assert r.layout() == [rw(0, 5, GU)] and r.delta == 1
    r.munmap(0, 5)
    r.map(0, 4), r.madvise(0, 1, MADV_GUARD_INSTALL)          # N6: a split copies gu
    r.mprotect(1, 2, PROT_READ)
    assert r.layout() == [rw(0, 1, GU), ro(1, 3, "rd mr mw me gu ac"), rw(3, 4, GU)]
    r.mprotect(1, 2, RW)                                      # N7
    assert r.layout() == [rw(0, 4, GU)] and r.delta == 1
    r.munmap(0, 4)
    r.map(0, 2), r.map(2, 2, PROT_READ)                       # N9: plain RW + R gu
    r.madvise(2, 1, MADV_GUARD_INSTALL)
    r.mprotect(2, 2, RW)
    assert r.layout() == [rw(0, 4, GU)] and r.delta == 1


# --- files and shared memory (probes P..Q) --------------------------------------------------

def test_file_offsets_decide(env, region):
    r = region
    f = env.system.create_file("offsets", 16 * P)
    pf = "rd wr mr mw me ac"
    r.map(0, 2, RW, MAP_PRIVATE, f, off=0), r.map(2, 2, RW, MAP_PRIVATE, f, off=2)   # P
    assert r.layout() == [rw(0, 4, pf)] and r.delta == 1
    r.map(4, 2, RW, MAP_PRIVATE, f, off=8)                                         # P2
    assert r.layout() == [rw(0, 4, pf), rw(4, 6, pf)] and r.delta == 2
    r.map(6, 2, RW, MAP_PRIVATE, f, off=10)                 # contiguous with the last one
    assert r.spans() == [(0, 4), (4, 8)]
    r.munmap(0, 8)
    r.map(0, 2, RW, MAP_SHARED, f, off=0), r.map(2, 2, RW, MAP_SHARED, f, off=2)     # P3
    assert r.layout() == [(0, 4, "rw-s", SHARED_RW)] and r.delta == 1
    r.munmap(0, 4)
    r.map(0, 2, RW, MAP_PRIVATE, f, off=0), r.touch(0)                               # P4
    r.map(2, 2, RW, MAP_PRIVATE, f, off=2)
    assert r.layout() == [rw(0, 4, pf)] and r.delta == 1
    r.munmap(0, 4)
    r.map(0, 2, RW, MAP_PRIVATE, f, off=0), r.map(2, 2)                              # P5
    assert r.spans() == [(0, 2), (2, 4)]
    r.munmap(0, 4)
    r.map(0, 2, RW, MAP_SHARED | 0x20), r.map(2, 2, RW, MAP_SHARED | 0x20)           # Q
    assert r.layout() == [(0, 2, "rw-s", SHARED_RW), (2, 4, "rw-s", SHARED_RW)]
    assert r.delta == 2


# --- MAP_FIXED over, munmap in the middle (probes R, R2, V) ---------------------------------

def test_map_fixed_over_and_munmap_middle(region):
    r = region
    r.map(0, 4)
    r.map(1, 2)                                    # R: same attributes, one VMA stays
    assert r.layout() == [rw(0, 4)] and r.delta == 1
    r.touch(0, 4)
    r.map(1, 2)                                    # R2: faulted, still one VMA
    assert r.layout() == [rw(0, 4)] and r.delta == 1
    assert r.mm.read(r.addr(1), 1) == b"\0"        # the new pages are fresh
    r.map(1, 2, PROT_READ)                         # different attributes: split in 3
    assert r.layout() == [rw(0, 1), ro(1, 3), rw(3, 4)] and r.delta == 3
    r.munmap(1, 2)                                 # V: the middle goes
    assert r.layout() == [rw(0, 1), rw(3, 4)] and r.delta == 2
    r.munmap(0, 8)
    assert r.layout() == [] and r.delta == 0


# --- mremap ---------------------------------------------------------------------------------

MAYMOVE, FIXED, DONTUNMAP = 1, 2, 4


def test_mremap_grow_in_place_and_absorb_next(region):
    """S: a faulted VMA grows in place. tools/testing/vma test_merge_extend: growing up to
    a compatible next VMA merges with it."""
    r = region
    mm = r.mm
    r.map(0, 2), r.touch(0, 2)
    assert mm.mremap(r.addr(0), 2 * P, 4 * P) == r.addr(0)
    assert r.layout() == [rw(0, 4)] and r.delta == 1
    #  AAAA*..BB  -> grow A by 3 pages until it meets B (untouched): one VMA
    r.map(7, 2)
    assert mm.mremap(r.addr(0), 4 * P, 7 * P) == r.addr(0)
    assert r.layout() == [rw(0, 9)] and r.delta == 1
    #  shrink: the tail goes
    assert mm.mremap(r.addr(0), 9 * P, 3 * P) == r.addr(0)
    assert r.layout() == [rw(0, 3)] and r.delta == 1


def test_mremap_move_pgoff_and_anon_vma(region):
    """T..T9: moving an unfaulted VMA resets its pgoff to the new place (so it merges
    there); a faulted one keeps its pgoff and anon_vma (it merges only with its own other
    half, T5)."""
    r = region
    mm = r.mm

    def move(src, n, dst, new_n=None):
        new_n = n if new_n is None else new_n
        assert mm.mremap(r.addr(src), n * P, new_n * P, MAYMOVE | FIXED, r.addr(dst)) == \
            r.addr(dst)

    def reset():
        r.munmap(0, 32)
        assert r.delta == 0

    r.map(0, 2), r.map(8, 2), move(8, 2, 2)                         # T
    assert r.layout() == [rw(0, 4)] and r.delta == 1
    reset()
    r.map(0, 2), r.touch(0), r.map(8, 2), move(8, 2, 2)             # T2
    assert r.layout() == [rw(0, 4)] and r.delta == 1
    reset()
    r.map(0, 4), r.touch(0, 4), move(2, 2, 8)                       # T4
    assert r.layout() == [rw(0, 2), rw(8, 10)] and r.delta == 2
    move(8, 2, 2)                                                   # T5
    assert r.layout() == [rw(0, 4)] and r.delta == 1
    assert mm.read(r.addr(3), 1) == b"\0"
    reset()
    r.map(0, 2), r.touch(0), move(0, 2, 8), r.map(10, 2)            # T6
    assert r.layout() == [rw(8, 10), rw(10, 12)] and r.delta == 2
    r.map(6, 2)                                                     # T7
    assert r.layout() == [rw(6, 8), rw(8, 10), rw(10, 12)] and r.delta == 3
    reset()
    r.map(0, 2), move(0, 2, 8), r.map(10, 2)                        # T8
    assert r.layout() == [rw(8, 12)] and r.delta == 1
    reset()
    r.map(0, 2), r.touch(0), move(0, 2, 8, 4)                       # T9: moved and grown
    assert r.layout() == [rw(8, 12)] and r.delta == 1


def test_mremap_move_keeps_anon_vma_apart(region):
    """copy_vma() merges the moved range with a neighbour only if their anon_vmas are
    compatible: two VMAs faulted apart (own anon_vmas), moved next to each other with
    contiguous pgoffs and equal flags, stay two VMAs - whichever side the move lands on."""
    r = region
    mm = r.mm

    def move(src, dst):
        assert mm.mremap(r.addr(src), 2 * P, 2 * P, MAYMOVE | FIXED, r.addr(dst)) == r.addr(dst)

    #  AA.. -> ..........AA        A keeps pgoff 0 and its anon_vma
    r.map(0, 2), r.touch(0), move(0, 40)
    #  ..BB  (pgoff 2, faulted now, a new anon_vma) -> lands right after A
    r.map(2, 2), r.touch(2), move(2, 42)
    assert r.layout() == [rw(40, 42), rw(42, 44)] and r.delta == 2
    r.munmap(40, 4)
    #  the same, B moved first and A landing before it
    r.map(2, 2), r.touch(2), move(2, 42)
    r.map(0, 2), r.touch(0), move(0, 40)
    assert r.layout() == [rw(40, 42), rw(42, 44)] and r.delta == 2


def test_mremap_dontunmap(region):
    """MREMAP_DONTUNMAP: the old range stays mapped, empty; the data moved."""
    r = region
    mm = r.mm
    r.map(0, 4), mm.write(r.addr(0), b"abc")
    new = mm.mremap(r.addr(0), 4 * P, 4 * P, MAYMOVE | DONTUNMAP | FIXED, r.addr(16))
    assert new == r.addr(16)
    assert r.layout() == [rw(0, 4), rw(16, 20)] and r.delta == 2
    assert mm.pagemap(r.addr(0), 4 * P).tolist() == [0] * 4       # nothing left behind
    assert mm.read(r.addr(16), 3) == b"abc" and mm.read(r.addr(0), 3) == b"\0\0\0"


def test_mremap_dontunmap_part_of_a_locked_vma(region):
    """DONTUNMAP of 2 pages out of a locked VMA: the moved pages stay locked, and the
    *whole* old VMA loses VM_LOCKED/VM_LOCKONFAULT in place - no split, and no merge with
    its now identical neighbour."""
    r = region
    mm = r.mm
    r.map(0, 16, RWX)
    ok(mm.mlock(r.addr(4), 12 * P, MLOCK_ONFAULT))
    lolf = "rd wr ex mr mw me lo lf ac"
    assert r.layout() == [(0, 4, "rwxp", "rd wr ex mr mw me ac"), (4, 16, "rwxp", lolf)]
    new = mm.mremap(r.addr(12), 2 * P, 2 * P, MAYMOVE | DONTUNMAP | FIXED, r.addr(32))
    assert new == r.addr(32)
    assert r.layout() == [(0, 4, "rwxp", "rd wr ex mr mw me ac"),
                          (4, 16, "rwxp", "rd wr ex mr mw me ac"), (32, 34, "rwxp", lolf)]
    assert r.delta == 3


def test_vmlck_is_a_counter(env, region):
    """VmLck is mm->locked_vm, kept up by mlock, munlock, munmap and mremap - not summed
    from the VMAs: after DONTUNMAP the old VMA shows no `lo` but its pages still count,
    and the moved pages count again."""
    r = region
    mm = r.mm
    base = mm.status()["VmLck"]
    r.map(0, 16)
    ok(mm.mlock(r.addr(4), 12 * P))
    assert mm.status()["VmLck"] - base == 48
    r.munmap(14, 2)
    assert mm.status()["VmLck"] - base == 40
    mm.mremap(r.addr(12), 2 * P, 2 * P, MAYMOVE | DONTUNMAP | FIXED, r.addr(32))
    assert mm.status()["VmLck"] - base == 48


def test_mremap_multi_vma_move(region):
    """6.17+: MREMAP_MAYMOVE|MREMAP_FIXED with equal sizes moves several VMAs and the holes
    between them at once; without FIXED an equal-size call is a no-op over holes too."""
    r = region
    mm = r.mm
    #  AAAABBBB.CCCC
    r.map(0, 4), r.map(4, 4, PROT_READ), r.map(9, 4)
    mm.write(r.addr(0), b"a"), mm.write(r.addr(9), b"c")
    assert mm.mremap(r.addr(0), 13 * P, 13 * P) == r.addr(0)       # no-op
    assert r.spans() == [(0, 4), (4, 8), (9, 13)]
    assert mm.mremap(r.addr(0), 13 * P, 13 * P, MAYMOVE | FIXED, r.addr(32)) == r.addr(32)
    assert r.layout() == [rw(32, 36), ro(36, 40), rw(41, 45)] and r.delta == 3
    assert mm.read(r.addr(32), 1) == b"a" and mm.read(r.addr(41), 1) == b"c"
    #  shrinking a range that spans two VMAs unmaps the tail
    assert mm.mremap(r.addr(32), 8 * P, 2 * P) == r.addr(32)
    assert r.layout() == [rw(32, 34), rw(41, 45)] and r.delta == 2


def test_mremap_multi_vma_move_is_one_move_per_vma(region):
    """remap_move() moves each VMA on its own, so: the destination under a source gap is
    left mapped; a sealed VMA further on fails (EPERM) after the earlier ones moved; and
    MREMAP_DONTUNMAP works across several VMAs too."""
    r = region
    mm = r.mm
    #  AAAA.BBBB  ->  onto a PROT_NONE mapping at [20,32)
    r.map(0, 4), r.map(5, 4, PROT_READ), r.map(20, 12, PROT_NONE)
    assert mm.mremap(r.addr(0), 9 * P, 9 * P, MAYMOVE | FIXED, r.addr(20)) == r.addr(20)
    assert r.layout() == [rw(20, 24), (24, 25, "---p", ANON_NONE), ro(25, 29),
                          (29, 32, "---p", ANON_NONE)]
    r.munmap(0, 64)
    #  AAAA.SSSS  with S sealed: A moves, then EPERM
    r.map(0, 4), r.map(5, 4, PROT_READ), ok(mm.mseal(r.addr(5), 4 * P))
    with pytest.raises(OSError) as e:
        mm.mremap(r.addr(0), 9 * P, 9 * P, MAYMOVE | FIXED, r.addr(20))
    assert e.value.errno == 1
    assert r.layout() == [ro(5, 9, "rd mr mw me sl"), rw(20, 24)]
    #  DONTUNMAP over two VMAs: both copied, both left behind empty
    r.map(32, 4), r.map(36, 4, PROT_READ)
    assert mm.mremap(r.addr(32), 8 * P, 8 * P, MAYMOVE | FIXED | DONTUNMAP, r.addr(48)) == \
        r.addr(48)
    assert r.layout()[2:] == [rw(32, 36), ro(36, 40), rw(48, 52), ro(52, 56)]


def test_mremap_grown_locked_vma_is_populated(region):
    """A VM_LOCKED mapping that mremap grows has the new part faulted in, in place or
    moved; with MLOCK_ONFAULT it has not."""
    r = region
    mm = r.mm

    def present(page, n):
        return [int(x) >> 63 for x in mm.pagemap(r.addr(page), n * P)]

    r.map(0, 4, RW, ANON | 0x2000)                            # MAP_LOCKED: populated
    assert mm.mremap(r.addr(0), 4 * P, 8 * P) == r.addr(0)
    assert present(0, 8) == [1] * 8
    r.map(8, 1, PROT_READ)                                    # now it must move
    assert mm.mremap(r.addr(0), 8 * P, 12 * P, MAYMOVE | FIXED, r.addr(32)) == r.addr(32)
    assert present(32, 12) == [1] * 12
    r.map(64, 2), ok(mm.mlock(r.addr(64), 2 * P, MLOCK_ONFAULT))
    assert mm.mremap(r.addr(64), 2 * P, 4 * P) == r.addr(64)
    assert present(64, 4) == [0] * 4


def test_mremap_grow_must_move(region):
    """Grow blocked by a neighbour: ENOMEM without MAYMOVE, else it moves elsewhere (out
    of this region: top-down) and the old range is gone."""
    r = region
    mm = r.mm
    r.map(0, 4), mm.write(r.addr(0), b"x"), r.map(4, 4, PROT_READ)
    with pytest.raises(OSError) as e:
        mm.mremap(r.addr(0), 4 * P, 8 * P)
    assert e.value.errno == 12
    new = mm.mremap(r.addr(0), 4 * P, 8 * P, MAYMOVE)
    assert not r.base <= new < r.base + r.span
    assert r.layout() == [ro(4, 8)]
    assert mm.read(new, 1) == b"x"
    v = [v for v in mm.vmas() if v.start <= new < v.end][0]
    assert (v.start, v.end) == (new, new + 8 * P)


# --- brk --------------------------------------------------------------------------------------

def test_brk_grow_and_shrink(env):
    """brk grows and shrinks the heap VMA by page-aligned ends and returns the (possibly
    unaligned) new break; a mapping right above blocks growth (it needs one free page
    beyond); shrinking never goes below where we started."""
    mm = env.mm
    cur = mm.brk(0)
    base = mm.brk(cur + 1)                     # on the simulator this creates the VMA
    assert base == cur + 1

    def heap():
        v = [v for v in mm.vmas() if v.start < base and base <= v.end]
        assert len(v) == 1
        return v[0]

    count = mm.map_count
    top = (cur + P) & ~(P - 1) if cur & (P - 1) else cur + P
    assert heap().end == top
    assert mm.brk(top + 3 * P + 5) == top + 3 * P + 5
    assert heap().end == top + 4 * P and mm.map_count == count
    assert mm.brk(top + P) == top + P
    assert heap().end == top + P and mm.map_count == count
    # A mapping 8 pages above the break: growing to it is refused, up to one page below ok.
    blocker = mm.mmap(top + 8 * P, P, RW, ANON | 0x100000)
    assert blocker == top + 8 * P
    assert mm.brk(top + 8 * P + 1) == top + P
    assert mm.brk(top + 7 * P) == top + 7 * P
    ok(mm.munmap(blocker, P))
    assert mm.brk(top + 8 * P + P - 1) == top + 9 * P - 1
    assert heap().end == top + 9 * P
    assert mm.brk(cur + 1) == cur + 1 and heap().end == top
    assert mm.map_count == count
