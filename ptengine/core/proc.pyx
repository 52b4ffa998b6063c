# cython: language_level=3
"""What /proc reads from page tables: fs/proc/task_mmu.c (pte_to_pagemap_entry,
pagemap_pmd_range, smaps_pte_entry, smaps_pmd_entry, smaps_account), plus the census and
dump walks of PageTables.count() and dump().
"""
from libc.errno cimport ENOMEM
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint64_t
from libc.stdlib cimport realloc

from ptengine.core.entry cimport *
from ptengine.core.frames cimport *
from ptengine.core.tables cimport *
from ptengine.core.walk cimport *

# /proc/pid/pagemap bits (fs/proc/task_mmu.c)
cdef uint64_t PM_PFRAME_MASK_ = ((<uint64_t>1) << 55) - 1
cdef uint64_t PM_SOFT_DIRTY_ = (<uint64_t>1) << 55
cdef uint64_t PM_MMAP_EXCLUSIVE_ = (<uint64_t>1) << 56
cdef uint64_t PM_UFFD_WP_ = (<uint64_t>1) << 57
cdef uint64_t PM_GUARD_REGION_ = (<uint64_t>1) << 58
cdef uint64_t PM_FILE_ = (<uint64_t>1) << 61
cdef uint64_t PM_SWAP_ = (<uint64_t>1) << 62
cdef uint64_t PM_PRESENT_ = (<uint64_t>1) << 63


# ---------------------------------------------------------------------------------------
# /proc/pid/pagemap (fs/proc/task_mmu.c pte_to_pagemap_entry, pagemap_pmd_range)
# ---------------------------------------------------------------------------------------
cdef struct pm_out:
    uint64_t *out
    Py_ssize_t stride       # in u64 elements
    uint64_t base_flags     # PM_SOFT_DIRTY when the VMA is VM_SOFTDIRTY


cdef inline uint64_t _pm_present(frame_store *fs, uint64_t pfn) noexcept nogil:
    """PM bits of a PTE-mapped page: FILE unless anon, EXCLUSIVE if mapped once; none for
    the zero page (vm_normal_page() has no page for it)."""
    cdef uint64_t f = 0
    if pfn_is_zero(pfn) or pfn >= <uint64_t>fs.high:
        return 0
    if _kind(fs, pfn) != FRAME_ANON:
        f |= PM_FILE_
    if fs.mapcount[pfn] == 1:
        f |= PM_MMAP_EXCLUSIVE_
    return f


cdef inline uint64_t _pm_folio(frame_store *fs, uint64_t head) noexcept nogil:
    """PM bits of a PMD-mapped folio, the same for every subpage: FILE unless anon (the
    huge zero folio included: pagemap takes pmd_page(), not vm_normal_page()); EXCLUSIVE
    per folio, i.e. only if no subpage is mapped anywhere else."""
    cdef uint64_t i
    if pfn_is_zero(head):
        return PM_FILE_
    for i in range(head, head + PT_HPAGE_NR):
        if fs.mapcount[i] != 1:
            return PM_FILE_ if _kind(fs, head) != FRAME_ANON else 0
    return PM_MMAP_EXCLUSIVE_ | (PM_FILE_ if _kind(fs, head) != FRAME_ANON else 0)


cdef inline uint64_t _pm_entry(frame_store *fs, uint64_t e) noexcept nogil:
    cdef uint64_t pfn, f, t, off
    if e == 0:
        return 0
    if pte_present(e):
        pfn = pte_pfn(e)
        f = PM_PRESENT_ | (pfn & PM_PFRAME_MASK_) | _pm_present(fs, pfn)
        if e & PTE_SOFT_DIRTY:
            f |= PM_SOFT_DIRTY_
        if e & PTE_UFFD_WP:
            f |= PM_UFFD_WP_
        return f
    t = swp_type(e)
    off = swp_offset(e)
    f = PM_SWAP_ | ((t | (off << SWP_TYPE_BITS)) & PM_PFRAME_MASK_)
    if e & SWP_SOFT_DIRTY:
        f |= PM_SOFT_DIRTY_
    if e & SWP_UFFD_WP:
        f |= PM_UFFD_WP_
    if t == SWP_TYPE_PTE_MARKER:
        if off & PTE_MARKER_UFFD_WP:
            f |= PM_UFFD_WP_
        if off & PTE_MARKER_GUARD:
            f |= PM_GUARD_REGION_
    return f


cdef int _pm_ptes(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil:
    cdef pm_out *o = <pm_out *>w.priv
    cdef uint64_t *pte = _ptes(pmd, addr)
    cdef Py_ssize_t i, n = <Py_ssize_t>((end - addr) >> PT_PAGE_SHIFT)
    cdef uint64_t *out = o.out + o.stride * <Py_ssize_t>((addr - w.start) >> PT_PAGE_SHIFT)
    for i in range(n):
        out[i * o.stride] = _pm_entry(w.mm.fs, pte[i]) | o.base_flags
    return WALK_NEXT


cdef int _pm_huge(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil:
    cdef pm_out *o = <pm_out *>w.priv
    cdef uint64_t v = pmd[0], pfn = pte_pfn(v) + pt_index(addr, PT_PAGE_SHIFT), f
    cdef Py_ssize_t i, n = <Py_ssize_t>((end - addr) >> PT_PAGE_SHIFT)
    cdef uint64_t *out = o.out + o.stride * <Py_ssize_t>((addr - w.start) >> PT_PAGE_SHIFT)
    f = PM_PRESENT_ | o.base_flags | _pm_folio(w.mm.fs, pte_pfn(v))
    if v & PTE_SOFT_DIRTY:
        f |= PM_SOFT_DIRTY_
    if v & PTE_UFFD_WP:
        f |= PM_UFFD_WP_
    for i in range(n):
        out[i * o.stride] = f | (pfn + i)
    return WALK_NEXT


cdef int _pm_hole(pt_walk *w, uint64_t addr, uint64_t end) noexcept nogil:
    cdef pm_out *o = <pm_out *>w.priv
    cdef Py_ssize_t i, n = <Py_ssize_t>((end - addr) >> PT_PAGE_SHIFT)
    cdef uint64_t *out = o.out + o.stride * <Py_ssize_t>((addr - w.start) >> PT_PAGE_SHIFT)
    for i in range(n):
        out[i * o.stride] = o.base_flags
    return WALK_NEXT


cdef pt_walk_ops _pm_ops = pt_walk_ops(pte_range=_pm_ptes, huge_pmd=_pm_huge, hole=_pm_hole,
                                       alloc=False)


cdef int pt_pagemap(pt_mm *mm, uint64_t start, uint64_t end, uint64_t *out,
                    Py_ssize_t stride, bint vma_softdirty) noexcept nogil:
    cdef pt_walk w
    cdef pm_out o
    o.out = out
    o.stride = stride
    o.base_flags = PM_SOFT_DIRTY_ if vma_softdirty else 0
    return pt_run_walk(&w, mm, &_pm_ops, start, end, 0, 0, &o)


# ---------------------------------------------------------------------------------------
# /proc/pid/smaps (fs/proc/task_mmu.c smaps_pte_entry, smaps_pmd_entry, smaps_account)
# ---------------------------------------------------------------------------------------
cdef inline void _smaps_page(smaps_acc *a, int kind, int64_t size, int64_t pss,
                             bint dirty, bint private) noexcept nogil:
    """smaps_page_accumulate()"""
    a.pss += pss
    if kind == FRAME_ANON:
        a.pss_anon += pss
    elif kind == FRAME_SHMEM:
        a.pss_shmem += pss
    else:
        a.pss_file += pss
    if dirty:
        a.pss_dirty += pss
        if private:
            a.private_dirty += size
        else:
            a.shared_dirty += size
    else:
        if private:
            a.private_clean += size
        else:
            a.shared_clean += size


cdef void _smaps_account(smaps_acc *a, frame_store *fs, uint64_t pfn, int64_t nr,
                         bint young, bint dirty) noexcept nogil:
    """smaps_account() for a folio of nr pages starting at pfn."""
    cdef int kind = _kind(fs, pfn)
    cdef int64_t size = nr << PT_PAGE_SHIFT, i, mc, pss
    cdef bint folio_dirty = (fs.flags[pfn] & FRAME_DIRTY) != 0
    a.rss += size
    if kind == FRAME_ANON:
        a.anonymous += size
        if (fs.flags[pfn] & FRAME_LAZYFREE) and not dirty and not folio_dirty:
            a.lazyfree += size
    if young:
        a.referenced += size
    dirty = dirty or folio_dirty
    if fs.refcount[pfn] == 1:
        _smaps_page(a, kind, size, size << 12, dirty, True)
        return
    for i in range(nr):
        mc = fs.mapcount[pfn + i]
        pss = <int64_t>PAGE_SIZE_ << 12
        if mc >= 2:
            pss //= mc
        _smaps_page(a, kind, PAGE_SIZE_, pss, dirty, mc < 2)


cdef int _smaps_ptes(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil:
    cdef smaps_acc *a = <smaps_acc *>w.priv
    cdef uint64_t *pte = _ptes(pmd, addr)
    cdef Py_ssize_t i, n = <Py_ssize_t>((end - addr) >> PT_PAGE_SHIFT)
    cdef uint64_t e, pfn
    for i in range(n):
        e = pte[i]
        if pte_present(e):
            pfn = pte_pfn(e)
            if not pfn_is_zero(pfn):
                _smaps_account(a, w.mm.fs, pfn, 1, (e & PTE_ACCESSED) != 0,
                               (e & PTE_DIRTY) != 0)
        elif e != 0 and swp_type(e) != SWP_TYPE_PTE_MARKER:
            a.swap += PAGE_SIZE_
    return WALK_NEXT


cdef int _smaps_huge(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil:
    cdef smaps_acc *a = <smaps_acc *>w.priv
    cdef uint64_t v = pmd[0], head = pte_pfn(v)
    cdef int kind = _kind(w.mm.fs, head)
    if pfn_is_zero(head):
        return WALK_NEXT        # vm_normal_page_pmd() has no page for the huge zero PMD
    if kind == FRAME_ANON:
        a.anon_huge += PMD_SIZE_
    elif kind == FRAME_SHMEM:
        a.shmem_huge += PMD_SIZE_
    else:
        a.file_huge += PMD_SIZE_
    _smaps_account(a, w.mm.fs, head, PT_HPAGE_NR, (v & PTE_ACCESSED) != 0,
                   (v & PTE_DIRTY) != 0)
    return WALK_NEXT


cdef pt_walk_ops _smaps_ops = pt_walk_ops(pte_range=_smaps_ptes, huge_pmd=_smaps_huge,
                                          hole=NULL, alloc=False)


# ---------------------------------------------------------------------------------------
# count() and dump() (introspection for the Python layer and tests)
# ---------------------------------------------------------------------------------------
cdef int _count_ptes(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil:
    cdef entry_counts *c = <entry_counts *>w.priv
    cdef uint64_t *pte = _ptes(pmd, addr)
    cdef Py_ssize_t i, n = <Py_ssize_t>((end - addr) >> PT_PAGE_SHIFT)
    cdef uint64_t e, m
    c.pte_tables += 1
    for i in range(n):
        e = pte[i]
        if e == 0:
            c.none += 1
        elif e & PTE_PRESENT:
            c.present += 1
            c.zero_page += pte_pfn(e) == FRAME_ZERO_PFN
        elif e & PTE_PROTNONE:
            c.protnone += 1
        elif swp_type(e) == SWP_TYPE_PTE_MARKER:
            m = swp_offset(e)
            c.guard += (m & PTE_MARKER_GUARD) != 0
            c.poison += (m & PTE_MARKER_POISONED) != 0
            c.uffd_wp += (m & PTE_MARKER_UFFD_WP) != 0
        else:
            c.swap += 1
    return WALK_NEXT


cdef int _count_huge(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil:
    (<entry_counts *>w.priv).huge_pmd += 1
    return WALK_NEXT


cdef int _count_hole(pt_walk *w, uint64_t addr, uint64_t end) noexcept nogil:
    (<entry_counts *>w.priv).none += <int64_t>((end - addr) >> PT_PAGE_SHIFT)
    return WALK_NEXT
cdef int _list_push(entry_list *l, uint64_t addr, uint64_t raw) noexcept nogil:
    cdef void *p
    if l.n + 2 > l.cap:
        p = realloc(l.items, (l.cap * 2 + 64) * sizeof(uint64_t))
        if p == NULL:
            return -ENOMEM
        l.items = <uint64_t *>p
        l.cap = l.cap * 2 + 64
    l.items[l.n] = addr
    l.items[l.n + 1] = raw
    l.n += 2
    return 0


cdef int _dump_ptes(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil:
    cdef uint64_t *pte = _ptes(pmd, addr)
    cdef Py_ssize_t i, n = <Py_ssize_t>((end - addr) >> PT_PAGE_SHIFT)
    for i in range(n):
        if pte[i] != 0 and _list_push(<entry_list *>w.priv,
                                      addr + (<uint64_t>i << PT_PAGE_SHIFT), pte[i]) < 0:
            return -ENOMEM
    return WALK_NEXT


cdef int _dump_huge(pt_walk *w, uint64_t *pmd, uint64_t addr, uint64_t end) noexcept nogil:
    return _list_push(<entry_list *>w.priv, addr & PMD_MASK_, pmd[0])


cdef pt_walk_ops _count_ops = pt_walk_ops(pte_range=_count_ptes, huge_pmd=_count_huge,
                                          hole=_count_hole, alloc=False)
cdef pt_walk_ops _dump_ops = pt_walk_ops(pte_range=_dump_ptes, huge_pmd=_dump_huge, hole=NULL,
                                         alloc=False)


cdef int pt_smaps(pt_walk *w, pt_mm *mm, uint64_t start, uint64_t end,
                  smaps_acc *a) noexcept nogil:
    return pt_run_walk(w, mm, &_smaps_ops, start, end, 0, 0, a)


cdef int pt_count(pt_walk *w, pt_mm *mm, uint64_t start, uint64_t end,
                  entry_counts *c) noexcept nogil:
    return pt_run_walk(w, mm, &_count_ops, start, end, 0, 0, c)


cdef int pt_dump(pt_walk *w, pt_mm *mm, uint64_t start, uint64_t end,
                 entry_list *l) noexcept nogil:
    return pt_run_walk(w, mm, &_dump_ops, start, end, 0, 0, l)
