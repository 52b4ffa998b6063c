# cython: language_level=3, boundscheck=False, wraparound=False
"""Prototype (issue 13 design, notes/engine-shape.md section 5): the C floor of a batched
one-page call on today's structures. A C loop does what a typed syscall function will do
per row, calling the VMA tree's C methods and the core's nogil walkers directly (no
argument boxing, no method lookup, no exception): guard install + remove of one page, and
a one-page mmap + munmap (VMA object made, inserted, removed; zap; free_pgtables)."""
from libc.stdint cimport uint64_t
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

from ptengine._core cimport PageTables, pt_install_guards, pt_remove_guards, pt_zap, pt_free_pgtables
from ptengine.vma cimport VMA, VMATree
from ptengine.addrspace cimport AddressSpace

cdef uint64_t P = 4096

cdef inline uint64_t now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <uint64_t>ts.tv_sec * 1000000000 + <uint64_t>ts.tv_nsec


def guard_pairs(AddressSpace mm not None, uint64_t addr, long n):
    """n x (find_vma, validity check, install one guard, find_vma, remove it); ns total."""
    cdef PageTables pt = <PageTables>mm.pt
    cdef VMATree tree = mm.vma_tree
    cdef VMA vma
    cdef uint64_t stop, t0 = now(), bad = 0
    cdef long i
    for i in range(n):
        vma = tree._find(addr)
        if vma is None or vma.start > addr or vma.flags & 0x40000000:
            bad += 1
        vma.flags |= (<uint64_t>1) << 11          # VM_MAYBE_GUARD, as madvise_guard_install
        pt_install_guards(&pt.mm, addr, addr + P, &stop)
        vma = tree._find(addr)
        if vma is None or vma.start > addr:
            bad += 1
        pt_remove_guards(&pt.mm, addr, addr + P)
    return now() - t0, bad


def mmap_munmap_pairs(AddressSpace mm not None, uint64_t addr, uint64_t flags, long n):
    """n x (a free range found by the hole walk, a VMA made and inserted; then looked up,
    removed, zapped and its tables freed); ns total. Placement is the tree's own top-down
    search (highest_gap) so the tree work is that of mmap(NULL) + munmap."""
    cdef PageTables pt = <PageTables>mm.pt
    cdef VMATree tree = mm.vma_tree
    cdef VMA vma
    cdef uint64_t bad, t0 = now(), start
    cdef long i
    for i in range(n):
        start = tree.highest_gap(P, P, mm.mmap_base)
        vma = VMA(start, start + P, flags, start >> 12)
        tree.insert(vma)
        vma = tree._find(start)
        tree.remove(vma)
        pt_zap(&pt.mm, start, start + P, 1)
        pt_free_pgtables(&pt.mm, start, start + P, 0, 0, False, &bad)
    return now() - t0


def parts(AddressSpace mm not None, uint64_t start, uint64_t flags, long n):
    """ns per op: VMA(...) construction; tree insert + _find + remove of a made VMA;
    zap + free_pgtables of an empty page; highest_gap (a def, called through Python)."""
    cdef PageTables pt = <PageTables>mm.pt
    cdef VMATree tree = mm.vma_tree
    cdef VMA vma = VMA(start, start + P, flags, start >> 12)
    cdef uint64_t bad, t0, t1, t2, t3, t4
    cdef long i
    t0 = now()
    for i in range(n):
        vma = VMA(start, start + P, flags, start >> 12)
    t1 = now()
    for i in range(n):
        tree.insert(vma)
        tree.remove(tree._find(start))
    t2 = now()
    for i in range(n):
        pt_zap(&pt.mm, start, start + P, 1)
        pt_free_pgtables(&pt.mm, start, start + P, 0, 0, False, &bad)
    t3 = now()
    for i in range(n):
        tree.highest_gap(P, P, mm.mmap_base)
    t4 = now()
    return [(t1 - t0) / n, (t2 - t1) / n, (t3 - t2) / n, (t4 - t3) / n]
