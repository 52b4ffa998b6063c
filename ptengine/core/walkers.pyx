# cython: language_level=3
"""The walkers of the syscalls: mm/madvise.c (guard_install_pte_entry,
guard_remove_pte_entry, madvise_cold_or_pageout_pte_range), mm/memory.c (zap_pte_range,
free_pgd_range, copy_page_range, do_anonymous_page), mm/mremap.c (move_page_tables),
mm/mprotect.c (change_pte_range), mm/pt_reclaim.c, mm/vmscan.c (reclaim_pages).

Each walker keeps its callbacks and its static pt_walk_ops here, so that the callbacks
inline the helpers of entry.pxd, frames.pxd, tables.pxd and walk.pxd.
"""
from libc.errno cimport ENOMEM
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint64_t
from libc.string cimport memcpy, memset

from ptengine.core.entry cimport *
from ptengine.core.frames cimport *
from ptengine.core.tables cimport *
from ptengine.core.walk cimport *

# The canonical shared PTE tables (tables.pyx), looked up once.
cdef const uint64_t *NONE_TABLE = pt_shared_table(0)
cdef const uint64_t *GUARD_TABLE = pt_shared_table(GUARD_PTE)


# ---------------------------------------------------------------------------------------
# MADV_GUARD_INSTALL / MADV_GUARD_REMOVE (mm/madvise.c guard_install_* / guard_remove_*)
# ---------------------------------------------------------------------------------------
cdef void _share_if_uniform(pt_mm *mm, uint64_t *pmd) noexcept nogil:
    """After guards were written over part of a private table: share the table if it now
    holds nothing but guard markers. (A table left all none by a partial remove stays
    private: the same page installed and removed in turn would otherwise copy a table
    each time.)"""
    cdef int64_t guards
    cdef uint64_t *pte = entry_table(pmd[0])
    # Both ends first: a table that is not all guards almost always shows it there, and
    # this runs after every one-page install (a full scan each time was 20% of a batched
    # guard install + remove).
    if pte[0] != GUARD_PTE or pte[PT_PTRS_PER_TABLE - 1] != GUARD_PTE:
        return
    if not _scan(pte, PT_PTRS_PER_TABLE, &guards) and guards == PT_PTRS_PER_TABLE:
        _pmd_share(mm, pmd, GUARD_PTE)


cdef int _install_ptes(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil:
    cdef uint64_t *pte
    cdef Py_ssize_t i, n = <Py_ssize_t>((end - addr) >> PT_PAGE_SHIFT)
    cdef uint64_t e
    cdef int64_t guards
    if pmd_is_shared(pmd[0]):
        if entry_table(pmd[0]) == GUARD_TABLE:
            return WALK_NEXT            # every entry is a guard already
        if n < PT_PTRS_PER_TABLE and pte_table_unshare(w.mm, pmd) < 0:
            return -ENOMEM
    pte = _ptes(pmd, addr)
    if not _scan(pte, n, &guards):      # the common case: only none and guard entries
        if n == PT_PTRS_PER_TABLE:
            _pmd_share(w.mm, pmd, GUARD_PTE)
        else:
            _fill(pte, n, GUARD_PTE)
            _share_if_uniform(w.mm, pmd)
        return WALK_NEXT
    for i in range(n):
        e = pte[i]
        if e == 0:
            pte[i] = GUARD_PTE
        elif not pte_is_guard(e):
            w.stop = addr + (<uint64_t>i << PT_PAGE_SHIFT)
            return WALK_STOP
    return WALK_NEXT


cdef int _install_hole(pt_walk *w, uint64_t addr, uint64_t end) noexcept nogil:
    """No table covers [addr, end) (at any level): allocate the PUD and PMD tables as the
    kernel's install walk does; a whole 2 MiB span names GUARD_TABLE (no PTE table is
    allocated), a partial one gets a private table."""
    cdef uint64_t next
    cdef uint64_t *pmd
    while addr < end:
        next = pt_addr_end(addr, end, PT_PMD_SHIFT)
        pmd = pt_pmd_entry(w.mm, addr, True)
        if pmd == NULL:
            return -ENOMEM
        if next - addr == PMD_SIZE_:
            _pmd_share(w.mm, pmd, GUARD_PTE)
        else:
            if pt_alloc_table(w.mm, pmd, PT_PMD_SHIFT) < 0:
                return -ENOMEM
            _fill(_ptes(pmd, addr), <Py_ssize_t>((next - addr) >> PT_PAGE_SHIFT), GUARD_PTE)
        addr = next
    return WALK_NEXT


# guard_install_walk_ops: holes get GUARD_TABLE or a table, huge PMDs stop the walk.
cdef pt_walk_ops _install_ops = pt_walk_ops(pte_range=_install_ptes, huge_pmd=_stop_here,
                                            hole=_install_hole, alloc=False)


cdef int pt_install_guards(pt_mm *mm, uint64_t start, uint64_t end,
                           uint64_t *stop) noexcept nogil:
    cdef pt_walk w
    cdef int r = pt_run_walk(&w, mm, &_install_ops, start, end, 0, 0, NULL)
    stop[0] = w.stop
    return r if r < 0 else 0


cdef int _remove_ptes(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil:
    cdef uint64_t *pte
    cdef Py_ssize_t i, n = <Py_ssize_t>((end - addr) >> PT_PAGE_SHIFT)
    cdef uint64_t e, m
    cdef int64_t guards
    if pmd_is_shared(pmd[0]):
        if entry_table(pmd[0]) == NONE_TABLE:
            return WALK_NEXT            # nothing to remove
        if n < PT_PTRS_PER_TABLE and pte_table_unshare(w.mm, pmd) < 0:
            return -ENOMEM
    pte = _ptes(pmd, addr)
    if not _scan(pte, n, &guards):      # the common case: only none and guard entries
        w.count += guards
        if n == PT_PTRS_PER_TABLE:
            _pmd_share(w.mm, pmd, 0)    # the kernel keeps the emptied table
        else:
            _fill(pte, n, 0)
        return WALK_NEXT
    for i in range(n):
        e = pte[i]
        m = pte_marker_bits(e)
        if m & PTE_MARKER_GUARD:
            # A guard marker with more than the exact value (soft-dirty after mremap, or
            # other marker bits): only the GUARD bit goes.
            m &= ~(<uint64_t>PTE_MARKER_GUARD)
            pte[i] = (make_marker_pte(m) | (e & SWP_FLAGS_MASK)) if m else 0
            w.count += 1
    return WALK_NEXT


# guard_remove_walk_ops: existing tables only, huge PMDs skipped.
cdef pt_walk_ops _remove_ops = pt_walk_ops(pte_range=_remove_ptes, huge_pmd=NULL, hole=NULL,
                                           alloc=False)


cdef int64_t pt_remove_guards(pt_mm *mm, uint64_t start, uint64_t end) noexcept nogil:
    cdef pt_walk w
    cdef int r = pt_run_walk(&w, mm, &_remove_ops, start, end, 0, 0, NULL)
    return r if r < 0 else w.count


# ---------------------------------------------------------------------------------------
# Zap (mm/memory.c zap_pte_range / zap_pmd_range, mm/pt_reclaim.c)
# ---------------------------------------------------------------------------------------
cdef inline void _unmap_pte(pt_mm *mm, uint64_t *p, uint64_t e, bint keep_uffd) noexcept nogil:
    """Clear one present PTE and drop its page's mapping. A file VMA registered for
    uffd-wp keeps the protection as a marker."""
    _unmap_frames(mm, pte_pfn(e), 1, (e & PTE_DIRTY) != 0)
    p[0] = UFFD_WP_PTE if keep_uffd and (e & PTE_UFFD_WP) else 0


cdef inline int _zap_one(pt_mm *mm, uint64_t *p, uint64_t e, int flags) noexcept nogil:
    """Zap one non-none PTE as zap_present_ptes()/zap_nonpresent_ptes() decide; returns 1
    if the entry was cleared, 0 if it is kept."""
    cdef bint keep_uffd = (flags & ZAP_KEEP_UFFD_WP) and not (flags & ZAP_DROP_MARKERS)
    cdef uint64_t m
    if pte_present(e):
        if (flags & ZAP_KEEP_COWS) and _kind(mm.fs, pte_pfn(e)) == FRAME_ANON:
            return 0
        _unmap_pte(mm, p, e, keep_uffd)
        return 1
    if swp_type(e) == SWP_TYPE_PTE_MARKER:
        m = swp_offset(e)
        if m & PTE_MARKER_UFFD_WP:
            if keep_uffd:
                return 0
        elif m & PTE_MARKER_GUARD:
            if not (flags & ZAP_DROP_MARKERS):
                return 0
        elif m & PTE_MARKER_POISONED:
            if flags & ZAP_KEEP_COWS:
                return 0
        p[0] = 0
        return 1
    if flags & ZAP_KEEP_COWS:       # a genuine swap entry is a private anon page
        return 0
    mm.swap_ents -= 1
    p[0] = UFFD_WP_PTE if keep_uffd and (e & SWP_UFFD_WP) else 0
    return 1


cdef int _zap_ptes(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil:
    cdef uint64_t *pte
    cdef Py_ssize_t i, n = <Py_ssize_t>((end - addr) >> PT_PAGE_SHIFT)
    cdef uint64_t e
    cdef int flags = <int>w.arg
    cdef int64_t guards
    cdef bint emptied
    if pmd_is_shared(pmd[0]):
        if entry_table(pmd[0]) == GUARD_TABLE and not (flags & ZAP_DROP_MARKERS):
            return WALK_NEXT            # guard markers survive an ordinary zap
        if n < PT_PTRS_PER_TABLE and pte_table_unshare(w.mm, pmd) < 0:
            return -ENOMEM
    pte = _ptes(pmd, addr)
    if _scan(pte, n, &guards):
        for i in range(n):
            e = pte[i]
            if e != 0:
                w.count += _zap_one(w.mm, pte + i, e, flags)
        emptied = not _or_table(entry_table(pmd[0]))
    else:                               # only none and guard entries
        if flags & ZAP_DROP_MARKERS:
            w.count += guards
            if n < PT_PTRS_PER_TABLE:   # a whole table is emptied below
                _fill(pte, n, 0)
        emptied = guards == 0 or (flags & ZAP_DROP_MARKERS)
    # PT_RECLAIM: a table whose whole span was zapped and is now empty goes; without it
    # the kernel keeps the empty table, which can then be the shared NONE_TABLE.
    if end - addr == PMD_SIZE_ and emptied:
        if flags & ZAP_RECLAIM_PT:
            _free_table(w.mm, pmd, PT_PMD_SHIFT)
        else:
            _pmd_share(w.mm, pmd, 0)
    return WALK_NEXT


cdef int _zap_huge(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil:
    cdef int r
    if end - addr == PMD_SIZE_:
        if (w.arg & ZAP_KEEP_COWS) and _kind(w.mm.fs, pte_pfn(pmd[0])) == FRAME_ANON:
            return WALK_NEXT
        _zap_huge_pmd(w.mm, pmd)
        w.count += PT_HPAGE_NR
        return WALK_NEXT
    r = pt_split_huge_pmd(w.mm, pmd)
    return r if r < 0 else WALK_DESCEND


cdef pt_walk_ops _zap_ops = pt_walk_ops(pte_range=_zap_ptes, huge_pmd=_zap_huge, hole=NULL,
                                        alloc=False)


cdef int64_t pt_zap(pt_mm *mm, uint64_t start, uint64_t end, int flags) noexcept nogil:
    cdef pt_walk w
    cdef int r = pt_run_walk(&w, mm, &_zap_ops, start, end, <uint64_t>flags, 0, NULL)
    return r if r < 0 else w.count


# ---------------------------------------------------------------------------------------
# free_pgd_range (mm/memory.c), with a dry run that proves nothing is leaked
# ---------------------------------------------------------------------------------------
cdef int _table_clear_except(uint64_t *table, int shift, uint64_t base, Py_ssize_t lo,
                             Py_ssize_t hi, uint64_t *bad) noexcept nogil:
    """1 (and *bad) if an entry of table outside the index range [lo, hi) is not none."""
    cdef Py_ssize_t i
    for i in range(PT_PTRS_PER_TABLE):
        if (i < lo or i >= hi) and table[i] != 0:
            bad[0] = base + (<uint64_t>i << shift)
            return 1
    return 0


cdef int _free_pte_table(pt_mm *mm, uint64_t *pmd, uint64_t addr, bint dry,
                         uint64_t *bad) noexcept nogil:
    """free_pte_range(): the table must hold only none entries."""
    cdef uint64_t base = addr & PMD_MASK_
    cdef uint64_t *table
    if not pmd_is_table(pmd[0]):
        bad[0] = base
        return 1
    table = entry_table(pmd[0])
    if _table_clear_except(table, PT_PAGE_SHIFT, base, 0, 0, bad):
        return 1
    if not dry:
        _free_table(mm, pmd, PT_PMD_SHIFT)
    return 0


cdef inline bint _span_fits(uint64_t start, uint64_t end, uint64_t mask, uint64_t floor,
                            uint64_t ceiling) noexcept nogil:
    """The tail check of free_pmd_range()/free_pud_range(): may the table whose span
    starts at start & mask go, given the caller's floor and ceiling?"""
    start &= mask
    if start < floor:
        return False
    if ceiling:
        ceiling &= mask
        if not ceiling:
            return False
    if end - 1 > ceiling - 1:
        return False
    return True


cdef int _free_pmd_range(pt_mm *mm, uint64_t *pud, uint64_t addr, uint64_t end,
                         uint64_t floor, uint64_t ceiling, bint dry,
                         uint64_t *bad) noexcept nogil:
    cdef uint64_t *table = entry_table(pud[0])
    cdef uint64_t start = addr, next
    cdef Py_ssize_t lo = pt_index(addr, PT_PMD_SHIFT), hi = lo
    while True:
        next = pt_addr_end(addr, end, PT_PMD_SHIFT)
        hi += 1
        if table[pt_index(addr, PT_PMD_SHIFT)] != 0 and \
                _free_pte_table(mm, table + pt_index(addr, PT_PMD_SHIFT), addr, dry, bad):
            return 1
        addr = next
        if addr == end:
            break
    if not _span_fits(start, end, PUD_MASK_, floor, ceiling):
        return 0
    if _table_clear_except(table, PT_PMD_SHIFT, start & PUD_MASK_, lo, hi, bad):
        return 1
    if not dry:
        _free_table(mm, pud, PT_PUD_SHIFT)
    return 0


cdef int _free_pud_range(pt_mm *mm, uint64_t *pgd, uint64_t addr, uint64_t end,
                         uint64_t floor, uint64_t ceiling, bint dry,
                         uint64_t *bad) noexcept nogil:
    cdef uint64_t *table = entry_table(pgd[0])
    cdef uint64_t start = addr, next
    cdef Py_ssize_t lo = pt_index(addr, PT_PUD_SHIFT), hi = lo, i
    while True:
        next = pt_addr_end(addr, end, PT_PUD_SHIFT)
        hi += 1
        if table[pt_index(addr, PT_PUD_SHIFT)] != 0 and \
                _free_pmd_range(mm, table + pt_index(addr, PT_PUD_SHIFT), addr, next,
                                floor, ceiling, dry, bad):
            return 1
        addr = next
        if addr == end:
            break
    # With the P4D level folded, free_p4d_range's PUD-table check uses the PGDIR span.
    if not _span_fits(start, end, PGDIR_MASK_, floor, ceiling):
        return 0
    if dry:
        # Every PMD table in [lo, hi) would have been freed (a table whose 1 GiB span
        # lies in a freed 512 GiB span always fits too); the rest must already be none.
        if _table_clear_except(table, PT_PUD_SHIFT, start & PGDIR_MASK_, lo, hi, bad):
            return 1
    else:
        for i in range(PT_PTRS_PER_TABLE):
            if table[i] != 0:
                bad[0] = (start & PGDIR_MASK_) + (<uint64_t>i << PT_PUD_SHIFT)
                return 1
        _free_table(mm, pgd, PT_PGDIR_SHIFT)
    return 0


cdef int pt_free_pgtables(pt_mm *mm, uint64_t addr, uint64_t end, uint64_t floor,
                          uint64_t ceiling, bint dry_run, uint64_t *bad) noexcept nogil:
    """free_pgd_range(addr, end, floor, ceiling). Returns 0, or 1 with *bad set to the
    address of an entry that is not none under a table that would be freed."""
    cdef uint64_t next
    cdef uint64_t *pgd
    addr &= PMD_MASK_
    if addr < floor:
        addr += PMD_SIZE_
        if not addr:
            return 0
    if ceiling:
        ceiling &= PMD_MASK_
        if not ceiling:
            return 0
    if end - 1 > ceiling - 1:
        end -= PMD_SIZE_
    if addr > end - 1:
        return 0
    while True:
        next = pt_addr_end(addr, end, PT_PGDIR_SHIFT)
        pgd = mm.pgd + pt_index(addr, PT_PGDIR_SHIFT)
        if pgd[0] != 0 and _free_pud_range(mm, pgd, addr, next, floor, ceiling, dry_run, bad):
            return 1
        addr = next
        if addr == end:
            return 0


# ---------------------------------------------------------------------------------------
# fork: copy_page_range (mm/memory.c copy_p4d_range .. copy_pte_range, copy_huge_pmd)
# ---------------------------------------------------------------------------------------
cdef int64_t _copy_ptes(pt_mm *src, pt_mm *dst, uint64_t *spte, uint64_t *dpte,
                        Py_ssize_t n, int flags) noexcept nogil:
    cdef Py_ssize_t i
    cdef uint64_t e, m
    cdef int64_t count = 0
    for i in range(n):
        e = spte[i]
        if e == 0:
            continue
        if pte_present(e):
            _map_frames(dst, pte_pfn(e), 1)
            if (flags & COPY_COW) and (e & PTE_RW):
                e &= ~PTE_RW
                spte[i] = e
            if flags & COPY_SHARED:
                e &= ~PTE_DIRTY
            e &= ~PTE_ACCESSED
            if not (flags & COPY_UFFD_WP):
                e &= ~PTE_UFFD_WP
        elif swp_type(e) == SWP_TYPE_PTE_MARKER:
            # copy_pte_marker(): error and guard markers always, uffd-wp only to a uffd-wp
            # registered child.
            m = swp_offset(e)
            m &= PTE_MARKER_POISONED | PTE_MARKER_GUARD | \
                (PTE_MARKER_UFFD_WP if flags & COPY_UFFD_WP else 0)
            if not m:
                continue
            e = make_marker_pte(m)
        else:
            dst.swap_ents += 1
            if not (flags & COPY_UFFD_WP):
                e &= ~SWP_UFFD_WP
        dpte[i] = e
        count += 1
    return count


cdef int64_t _copy_huge(pt_mm *src, pt_mm *dst, uint64_t *spmd, uint64_t *dpmd,
                        int flags) noexcept nogil:
    cdef uint64_t v = spmd[0], head = pte_pfn(v)
    if not _has_deposit(src.fs, head):
        return 0        # copy_huge_pmd() leaves file/shmem THPs to refault in the child
    if dpmd[0] != 0:    # an empty PTE table left in the child (checked by the caller)
        _free_table(dst, dpmd, PT_PMD_SHIFT)
    _map_frames(dst, head, PT_HPAGE_NR)
    dst.nr_pte_tables += 1      # the child's deposited table
    if (flags & COPY_COW) and (v & PTE_RW):
        v &= ~PTE_RW
        spmd[0] = v
    v &= ~PTE_ACCESSED
    if not (flags & COPY_UFFD_WP):
        v &= ~PTE_UFFD_WP
    dpmd[0] = v
    return PT_HPAGE_NR


cdef int64_t _copy_level(pt_mm *src, pt_mm *dst, uint64_t *stable, uint64_t *dtable,
                         int shift, uint64_t addr, uint64_t end, int flags) noexcept nogil:
    """copy_pud_range (shift = PUD) or copy_pmd_range (shift = PMD): the destination table
    exists; each non-none source entry gets its destination entry allocated and copied."""
    cdef uint64_t next, v
    cdef uint64_t *de
    cdef int64_t count = 0, r
    while True:
        next = pt_addr_end(addr, end, shift)
        v = stable[pt_index(addr, shift)]
        de = dtable + pt_index(addr, shift)
        r = 0
        if shift == PT_PMD_SHIFT and pmd_is_huge(v):
            r = _copy_huge(src, dst, stable + pt_index(addr, shift), de, flags)
        elif shift == PT_PMD_SHIFT and pmd_is_shared(v) and de[0] == 0 and \
                next - addr == PMD_SIZE_:
            # copy_pte_range() of a whole uniform table: copy_pte_marker() gives guard
            # markers to every child, so the child names the same canonical table.
            _pmd_share(dst, de, entry_table(v)[0])
            r = PT_PTRS_PER_TABLE if entry_table(v)[0] else 0
        elif v != 0:
            if shift == PT_PMD_SHIFT:
                if _pte_table_private(dst, de) < 0:
                    return -ENOMEM
                r = _copy_ptes(src, dst, entry_table(v) + pt_index(addr, PT_PAGE_SHIFT),
                               entry_table(de[0]) + pt_index(addr, PT_PAGE_SHIFT),
                               <Py_ssize_t>((next - addr) >> PT_PAGE_SHIFT), flags)
            else:
                if de[0] == 0 and pt_alloc_table(dst, de, shift) < 0:
                    return -ENOMEM
                r = _copy_level(src, dst, entry_table(v), entry_table(de[0]), shift - 9,
                                addr, next, flags)
                if r < 0:
                    return r
        count += r
        addr = next
        if addr == end:
            return count


cdef int64_t pt_copy_range(pt_mm *src, pt_mm *dst, uint64_t start, uint64_t end,
                           int flags) noexcept nogil:
    cdef uint64_t addr = start, next, v
    cdef uint64_t *de
    cdef int64_t count = 0, r
    if start >= end:
        return 0
    while True:
        next = pt_addr_end(addr, end, PT_PGDIR_SHIFT)
        v = src.pgd[pt_index(addr, PT_PGDIR_SHIFT)]
        if v != 0:
            de = dst.pgd + pt_index(addr, PT_PGDIR_SHIFT)
            if de[0] == 0 and pt_alloc_table(dst, de, PT_PGDIR_SHIFT) < 0:
                return -ENOMEM
            r = _copy_level(src, dst, entry_table(v), entry_table(de[0]), PT_PUD_SHIFT,
                            addr, next, flags)
            if r < 0:
                return r
            count += r
        addr = next
        if addr == end:
            return count


# ---------------------------------------------------------------------------------------
# mremap: move_page_tables (mm/mremap.c)
# ---------------------------------------------------------------------------------------
cdef inline uint64_t _move_extent(uint64_t old_addr, uint64_t old_end, uint64_t new_addr,
                                  uint64_t size) noexcept nogil:
    """get_extent(): up to the next size boundary of both addresses, within the range."""
    cdef uint64_t extent = ((old_addr + size) & ~(size - 1)) - old_addr
    if extent > old_end - old_addr:
        extent = old_end - old_addr
    if extent > ((new_addr + size) & ~(size - 1)) - new_addr:
        extent = ((new_addr + size) & ~(size - 1)) - new_addr
    return extent


cdef uint64_t *_old_entry(pt_mm *mm, uint64_t addr, int shift) noexcept nogil:
    """get_old_pud()/get_old_pmd(): the non-none entry at level shift, else NULL."""
    cdef uint64_t *e = mm.pgd + pt_index(addr, PT_PGDIR_SHIFT)
    cdef int s = PT_PGDIR_SHIFT
    while s > shift:
        if e[0] == 0:
            return NULL
        s -= 9
        e = entry_table(e[0]) + pt_index(addr, s)
    return e if e[0] != 0 else NULL


cdef uint64_t *_new_entry(pt_mm *mm, uint64_t addr, int shift) noexcept nogil:
    """alloc_new_pud()/alloc_new_pmd(): the entry at level shift, allocating the tables
    above it; NULL on ENOMEM."""
    cdef uint64_t *e = mm.pgd + pt_index(addr, PT_PGDIR_SHIFT)
    cdef int s = PT_PGDIR_SHIFT
    while s > shift:
        if e[0] == 0 and pt_alloc_table(mm, e, s) < 0:
            return NULL
        s -= 9
        e = entry_table(e[0]) + pt_index(addr, s)
    return e


cdef inline uint64_t _move_soft_dirty(uint64_t e) noexcept nogil:
    """move_soft_dirty_pte(): a moved entry is soft-dirty (markers included)."""
    return e | (PTE_SOFT_DIRTY if pte_present(e) else SWP_SOFT_DIRTY)


cdef int64_t pt_move_range(pt_mm *mm, uint64_t old_addr, uint64_t new_addr,
                           uint64_t length) noexcept nogil:
    """Returns the bytes moved (length), or -ENOMEM. The destination range must be all
    none (as after the caller's unmap) and must not overlap the source."""
    cdef uint64_t old_end = old_addr + length, extent
    cdef uint64_t *old_e
    cdef uint64_t *new_e
    cdef uint64_t *src
    cdef uint64_t *dst
    cdef Py_ssize_t i, n
    cdef int r
    while old_addr < old_end:
        extent = _move_extent(old_addr, old_end, new_addr, PUD_SIZE_)
        old_e = _old_entry(mm, old_addr, PT_PUD_SHIFT)
        if old_e == NULL:
            old_addr += extent
            new_addr += extent
            continue
        new_e = _new_entry(mm, new_addr, PT_PUD_SHIFT)
        if new_e == NULL:
            return -ENOMEM
        if extent == PUD_SIZE_ and new_e[0] == 0:
            # move_normal_pud(): the whole PMD table changes hands.
            new_e[0] = old_e[0]
            old_e[0] = 0
            old_addr += extent
            new_addr += extent
            continue
        extent = _move_extent(old_addr, old_end, new_addr, PMD_SIZE_)
        old_e = _old_entry(mm, old_addr, PT_PMD_SHIFT)
        if old_e == NULL:
            old_addr += extent
            new_addr += extent
            continue
        new_e = _new_entry(mm, new_addr, PT_PMD_SHIFT)
        if new_e == NULL:
            return -ENOMEM
        if pmd_is_huge(old_e[0]):
            if extent == PMD_SIZE_ and new_e[0] == 0:
                # move_huge_pmd() (the deposited table moves along within the mm)
                new_e[0] = old_e[0] | PTE_SOFT_DIRTY
                old_e[0] = 0
                old_addr += extent
                new_addr += extent
                continue
            r = pt_split_huge_pmd(mm, old_e)
            if r < 0:
                return r
        elif extent == PMD_SIZE_ and new_e[0] == 0:
            # move_normal_pmd(): the whole PTE table changes hands.
            new_e[0] = old_e[0]
            old_e[0] = 0
            old_addr += extent
            new_addr += extent
            continue
        if old_e[0] != 0:
            # move_ptes() writes both tables: neither may be a shared one.
            if _pte_table_private(mm, new_e) < 0 or pte_table_unshare(mm, old_e) < 0:
                return -ENOMEM
            # move_ptes()
            src = _ptes(old_e, old_addr)
            dst = _ptes(new_e, new_addr)
            n = <Py_ssize_t>(extent >> PT_PAGE_SHIFT)
            for i in range(n):
                if src[i] != 0:
                    dst[i] = _move_soft_dirty(src[i])
                    src[i] = 0
        old_addr += extent
        new_addr += extent
    return <int64_t>length


# ---------------------------------------------------------------------------------------
# First-touch faults on private anonymous memory (do_anonymous_page, do_wp_page reuse)
# ---------------------------------------------------------------------------------------
cdef enum:
    FAULT_WRITE = 1
    FAULT_TOUCH = 2

cdef int _fault_ptes(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil:
    """The pages of one PTE table: _fault_pte_run() and the counting of its new pages."""
    cdef int64_t fresh = 0
    cdef int r = _fault_pte_run(w, pmd, addr, end, &fresh)
    # One update of RSS and the frame count for the whole run (add_mm_counter() once per
    # batch, as the kernel's fault-around and folio batches do).
    w.mm.rss[FRAME_ANON] += fresh
    w.mm.fs.nr_used += fresh
    return r


cdef inline int _fault_pte_run(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end,
                               int64_t *fresh) noexcept nogil:
    cdef uint64_t *pte = _ptes(pmd, addr)
    cdef Py_ssize_t i, n = <Py_ssize_t>((end - addr) >> PT_PAGE_SHIFT)
    cdef uint64_t e, pfn, prot = w.arg2
    cdef uint64_t written = PTE_RW | PTE_DIRTY | PTE_SOFT_DIRTY | PTE_ACCESSED
    cdef bint write = (w.arg & FAULT_WRITE) != 0, touch = (w.arg & FAULT_TOUCH) != 0
    cdef frame_store *fs = w.mm.fs
    cdef int64_t newpfn
    # A shared table of guards stops the walk at its first entry without writing; a
    # shared empty one is filled: it becomes this mm's own.
    if pmd_is_shared(pmd[0]) and entry_table(pmd[0]) == NONE_TABLE:
        if pte_table_unshare(w.mm, pmd) < 0:
            w.stop = addr
            return -ENOMEM
        pte = _ptes(pmd, addr)
    for i in range(n):
        e = pte[i]
        if e != 0 and (e & PTE_PRESENT) == 0:
            w.stop = addr + (<uint64_t>i << PT_PAGE_SHIFT)   # marker, swap, PROT_NONE
            return WALK_STOP
        pfn = pte_pfn(e)
        if e == 0 or (write and pfn == FRAME_ZERO_PFN):
            if not write:
                pte[i] = (<uint64_t>FRAME_ZERO_PFN << PT_PAGE_SHIFT) | PTE_SPECIAL | \
                    (prot & ~(PTE_RW | PTE_DIRTY | PTE_SOFT_DIRTY))
                continue
            newpfn = _fs_take(fs)
            if newpfn < 0:
                w.stop = addr + (<uint64_t>i << PT_PAGE_SHIFT)
                return <int>newpfn
            # A fresh anon page, mapped once: its one reference is the mapping's.
            fs.refcount[newpfn] = 1
            fs.mapcount[newpfn] = 1
            fs.flags[newpfn] = FRAME_ANON
            fresh[0] += 1
            pte[i] = (<uint64_t>newpfn << PT_PAGE_SHIFT) | prot | written
            continue
        if not write:
            if touch:
                pte[i] = e | PTE_ACCESSED
            continue
        if e & PTE_RW:
            if touch:
                pte[i] = e | PTE_ACCESSED | PTE_DIRTY
            continue
        if _kind(fs, pfn) == FRAME_ANON and fs.mapcount[pfn] == 1 and fs.refcount[pfn] == 1:
            pte[i] = e | written                # wp_page_reuse(): exclusive anon page
            continue
        w.stop = addr + (<uint64_t>i << PT_PAGE_SHIFT)   # COW copy or a file page
        return WALK_STOP
    return WALK_NEXT


cdef int _fault_huge(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil:
    cdef uint64_t v = pmd[0], head = pte_pfn(v)
    cdef frame_store *fs = w.mm.fs
    cdef uint64_t i
    cdef bint exclusive = _kind(fs, head) == FRAME_ANON
    if not (v & PTE_PRESENT):
        return _stop_here(w, pmd, addr, end)
    if not (w.arg & FAULT_WRITE):
        if w.arg & FAULT_TOUCH:
            pmd[0] = v | PTE_ACCESSED
        return WALK_NEXT
    if v & PTE_RW:
        if w.arg & FAULT_TOUCH:
            pmd[0] = v | PTE_ACCESSED | PTE_DIRTY
        return WALK_NEXT
    for i in range(head, head + PT_HPAGE_NR):
        exclusive = exclusive and fs.mapcount[i] == 1 and fs.refcount[i] == 1
    if not exclusive:
        return _stop_here(w, pmd, addr, end)
    pmd[0] = v | PTE_RW | PTE_DIRTY | PTE_SOFT_DIRTY | PTE_ACCESSED
    return WALK_NEXT


# Faults allocate the tables they need (__handle_mm_fault()).
cdef pt_walk_ops _fault_ops = pt_walk_ops(pte_range=_fault_ptes, huge_pmd=_fault_huge,
                                          hole=NULL, alloc=True)


cdef int pt_fault_anon(pt_mm *mm, uint64_t start, uint64_t end, bint write,
                       uint64_t pte_flags, bint touch, uint64_t *stop) noexcept nogil:
    cdef pt_walk w
    cdef int r = pt_run_walk(&w, mm, &_fault_ops, start, end,
                             (FAULT_WRITE if write else 0) | (FAULT_TOUCH if touch else 0),
                             pte_flags, NULL)
    stop[0] = w.stop
    return r if r < 0 else 0


# ---------------------------------------------------------------------------------------
# mprotect: change_protection (mm/mprotect.c change_pte_range / change_huge_pmd)
# ---------------------------------------------------------------------------------------
cdef int _prot_ptes(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil:
    cdef uint64_t *pte = _ptes(pmd, addr)
    cdef Py_ssize_t i, n = <Py_ssize_t>((end - addr) >> PT_PAGE_SHIFT)
    cdef uint64_t e, ne, keep = ~w.arg2, bits = w.arg & w.arg2
    for i in range(n):
        e = pte[i]
        if pte_present(e):
            ne = (e & keep) | bits
            if ne != e:
                pte[i] = ne
                w.count += 1
    return WALK_NEXT


cdef int _prot_huge(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil:
    cdef uint64_t e = pmd[0], ne
    cdef int r
    if end - addr != PMD_SIZE_:
        r = pt_split_huge_pmd(w.mm, pmd)
        return r if r < 0 else WALK_DESCEND
    ne = (e & ~w.arg2) | (w.arg & w.arg2)
    if ne != e:
        pmd[0] = ne
        w.count += PT_HPAGE_NR
    return WALK_NEXT


cdef pt_walk_ops _prot_ops = pt_walk_ops(pte_range=_prot_ptes, huge_pmd=_prot_huge, hole=NULL,
                                         alloc=False)


cdef int64_t pt_change_prot(pt_mm *mm, uint64_t start, uint64_t end, uint64_t newflags,
                            uint64_t mask) noexcept nogil:
    cdef pt_walk w
    cdef int r = pt_run_walk(&w, mm, &_prot_ops, start, end, newflags, mask, NULL)
    return r if r < 0 else w.count


# ---------------------------------------------------------------------------------------
# MADV_COLD / MADV_PAGEOUT (mm/madvise.c madvise_cold_or_pageout_pte_range(), then for
# PAGEOUT mm/vmscan.c reclaim_pages() -> shrink_folio_list() with no swap device)
# ---------------------------------------------------------------------------------------
cdef inline bint _reclaim_keeps(frame_store *fs, uint64_t pfn, uint64_t e) noexcept nogil:
    """shrink_folio_list() on an exclusive page mapped by PTE e: True if it stays mapped.
    With no swap, add_to_swap() fails for a swap-backed anon page; a lazyfree one is
    discarded by try_to_unmap_one() unless written since MADV_FREE, which makes it
    swap-backed again. A page-cache page (file or shmem) is unmapped whatever its
    protection; what becomes of it in the cache is decided after the walk
    (mm/madvise.pyx _reclaimed_cache_pages())."""
    if _kind(fs, pfn) != FRAME_ANON:
        return False
    if not (fs.flags[pfn] & FRAME_LAZYFREE):
        return True
    if (e & PTE_DIRTY) or (fs.flags[pfn] & FRAME_DIRTY):
        fs.flags[pfn] &= ~FRAME_LAZYFREE
        return True
    return False


cdef int _reclaim_ptes(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil:
    cdef uint64_t *pte = _ptes(pmd, addr)
    cdef Py_ssize_t i, n = <Py_ssize_t>((end - addr) >> PT_PAGE_SHIFT)
    cdef frame_store *fs = w.mm.fs
    cdef uint64_t e, pfn
    for i in range(n):
        e = pte[i]
        if not pte_present(e):
            continue
        pfn = pte_pfn(e)
        # vm_normal_folio() has none for the zero page; a folio mapped elsewhere too is
        # left alone (folio_mapcount() != folio_nr_pages()).
        if pfn_is_zero(pfn) or fs.mapcount[pfn] != 1:
            continue
        if not w.arg:
            pte[i] = e & ~PTE_ACCESSED          # COLD makes the PTE old
        elif not _reclaim_keeps(fs, pfn, e):
            _unmap_pte(w.mm, pte + i, e, w.arg2 != 0)
            w.count += 1
    return WALK_NEXT


cdef inline bint _all_zero(frame_store *fs, uint64_t pfn) noexcept nogil:
    """The page holds only zero bytes (memchr_inv(page, 0, PAGE_SIZE) finds nothing)."""
    cdef const uint8_t *d = fs.data[pfn]
    cdef Py_ssize_t i
    if d == NULL:
        return True
    for i in range(PAGE_SIZE_):
        if d[i]:
            return False
    return True


cdef int _split_for_reclaim(pt_mm *mm, uint64_t *pmd) noexcept nogil:
    """split_folio() of an exclusive anon THP (RMP_USE_SHARED_ZEROPAGE): the PMD becomes
    PTEs, and each subpage that holds only zeroes is freed and maps the shared zero page
    instead (mm/migrate.c try_to_map_unused_to_zeropage())."""
    cdef uint64_t *pte
    cdef uint64_t e, pfn
    cdef Py_ssize_t i
    cdef int r = pt_split_huge_pmd(mm, pmd)
    if r < 0:
        return r
    pte = entry_table(pmd[0])
    for i in range(PT_HPAGE_NR):
        e = pte[i]
        pfn = pte_pfn(e)
        if _all_zero(mm.fs, pfn):
            _unmap_frames(mm, pfn, 1, False)
            pte[i] = (<uint64_t>FRAME_ZERO_PFN << PT_PAGE_SHIFT) | PTE_SPECIAL | \
                (e & ~(PTE_PFN_MASK | PTE_RW | PTE_DIRTY | PTE_ACCESSED | PTE_SOFT_DIRTY))
    return 0


cdef int _reclaim_huge(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil:
    cdef frame_store *fs = w.mm.fs
    cdef uint64_t v = pmd[0], head = pte_pfn(v)
    cdef int64_t i
    cdef int r
    if pfn_is_zero(head) or fs.mapcount[head] != 1:
        return WALK_NEXT
    if _kind(fs, head) != FRAME_ANON:
        if end - addr != PMD_SIZE_:
            r = pt_split_huge_pmd(w.mm, pmd)    # a file THP's PMD is just unmapped
            return r if r < 0 else WALK_DESCEND
        if not w.arg:
            pmd[0] = v & ~PTE_ACCESSED
        else:
            _zap_huge_pmd(w.mm, pmd)
            w.count += PT_HPAGE_NR
        return WALK_NEXT
    if end - addr != PMD_SIZE_:
        # Part of the THP: it is split, and the pages in the range handled one by one.
        r = _split_for_reclaim(w.mm, pmd)
        return r if r < 0 else WALK_DESCEND
    if not w.arg:
        pmd[0] = v & ~PTE_ACCESSED
    elif not (fs.flags[head] & FRAME_LAZYFREE):
        # add_to_swap() fails for the THP; shrink_folio_list() splits it to retry its pages
        # one by one, which fail too and stay.
        r = _split_for_reclaim(w.mm, pmd)
        return r if r < 0 else WALK_NEXT
    else:
        # try_to_unmap(TTU_SPLIT_HUGE_PMD) of a lazyfree THP: the PMD is split (into the
        # deposited PTE table, which stays); then every page is dropped, unless the THP
        # was written since MADV_FREE: it is swap-backed again and stays, as PTEs.
        r = pt_split_huge_pmd(w.mm, pmd)
        if r < 0:
            return r
        if not ((v & PTE_DIRTY) or (fs.flags[head] & FRAME_DIRTY)):
            return WALK_DESCEND
        for i in range(PT_HPAGE_NR):
            fs.flags[head + i] &= ~FRAME_LAZYFREE
    return WALK_NEXT


cdef pt_walk_ops _reclaim_ops = pt_walk_ops(pte_range=_reclaim_ptes, huge_pmd=_reclaim_huge,
                                            hole=NULL, alloc=False)


cdef int64_t pt_reclaim(pt_mm *mm, uint64_t start, uint64_t end, bint pageout,
                        bint keep_uffd) noexcept nogil:
    cdef pt_walk w
    cdef int r = pt_run_walk(&w, mm, &_reclaim_ops, start, end, pageout, keep_uffd, NULL)
    return r if r < 0 else w.count
