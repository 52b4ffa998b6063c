# cython: language_level=3
"""The debug checks of the core: mm/debug.c (CONFIG_DEBUG_VM's VM_BUG_ON checks, and
validate_mm()'s recount) over a frame_store and the pt_mm trees that map it.

Frames.check() and PageTables.check() (pagetables.pyx) call these after validating their
arguments; each raises InvariantError (an AssertionError) on the first broken invariant.
"""
from libc.stdint cimport int32_t, int64_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memset

from ptengine.core.entry cimport *
from ptengine.core.frames cimport *
from ptengine.core.tables cimport *
from ptengine.core.walk cimport _scan

from ..errors import InvariantError

# The canonical shared PTE tables (tables.pyx), looked up once.
cdef const uint64_t *NONE_TABLE = pt_shared_table(0)
cdef const uint64_t *GUARD_TABLE = pt_shared_table(GUARD_PTE)


cdef int check_frames(frame_store *fs, pt_mm **mms, Py_ssize_t n) except -1:
    """Frames.check(): the store's free list and counters, and, given the n address spaces
    that map its frames, that each frame's mapcount equals its mappings and its refcount
    covers them."""
    cdef int64_t pfn, nfree = 0, used = 0, data = 0, b
    cdef int32_t *maps
    cdef int64_t *per_block
    cdef Py_ssize_t i
    maps = <int32_t *>calloc(fs.capacity, sizeof(int32_t))
    per_block = <int64_t *>calloc(fs.capacity >> 9, sizeof(int64_t))
    if maps == NULL or per_block == NULL:
        free(maps)
        free(per_block)
        raise MemoryError()
    try:
        for i in range(n):
            tally_tables(mms[i], maps)
        if not 1024 <= fs.high <= fs.capacity:
            raise InvariantError(f"watermark {fs.high:#x} outside [0x400, {fs.capacity:#x}]")
        pfn = fs.free_head
        while pfn >= 0:
            if pfn >= fs.high or fs.refcount[pfn] != 0 or pfn == 0 or pfn_is_zero(pfn):
                raise InvariantError(f"free list holds pfn {pfn:#x}")
            nfree += 1
            per_block[pfn >> 9] += 1
            if nfree > fs.capacity:
                raise InvariantError("free list loops")
            pfn = fs.free_next[pfn]
        for b in range(fs.capacity >> 9):
            if per_block[b] != fs.block_free[b]:
                raise InvariantError(f"block {b}: {fs.block_free[b]} free recorded, "
                                     f"{per_block[b]} on the free list")
        for pfn in range(1, fs.high):
            if pfn_is_zero(pfn):
                if fs.refcount[pfn] != 1 or fs.mapcount[pfn] or fs.data[pfn] != NULL \
                        or _kind(fs, pfn) != FRAME_ZERO:
                    raise InvariantError(f"zero pfn {pfn:#x} has state")
                continue
            if fs.data[pfn] != NULL:
                data += 1
            if fs.refcount[pfn] == 0:
                if fs.mapcount[pfn] or fs.flags[pfn] or fs.data[pfn] != NULL or maps[pfn]:
                    raise InvariantError(f"free pfn {pfn:#x} has state")
                continue
            used += 1
            if not FRAME_ANON <= _kind(fs, pfn) <= FRAME_SHMEM:
                raise InvariantError(f"pfn {pfn:#x} has kind {_kind(fs, pfn)}")
            if n and fs.mapcount[pfn] != maps[pfn]:
                raise InvariantError(f"pfn {pfn:#x}: mapcount {fs.mapcount[pfn]}, "
                                     f"{maps[pfn]} mappings found")
            if fs.refcount[pfn] < fs.mapcount[pfn]:
                raise InvariantError(f"pfn {pfn:#x}: refcount {fs.refcount[pfn]} < "
                                     f"mapcount {fs.mapcount[pfn]}")
        if used != fs.nr_used or data != fs.nr_data:
            raise InvariantError(f"nr_used {fs.nr_used} (found {used}), nr_data "
                                 f"{fs.nr_data} (found {data})")
        if nfree + used + 2 + PT_HPAGE_NR != fs.high:
            raise InvariantError(f"{nfree} free + {used} used + {2 + PT_HPAGE_NR} "
                                 f"reserved != the watermark {fs.high}")
    finally:
        free(maps)
        free(per_block)
    return 0


cdef int tally_tables(pt_mm *mm, int32_t *maps) except -1:
    """Walk the whole tree: check every entry's form, recount tables, RSS and swap
    entries against the counters, and add each frame's mappings to maps[pfn]."""
    cdef frame_store *fs = mm.fs
    cdef int64_t nud = 0, nmd = 0, npt = 0, nshared = 0, ndeposit = 0, swap = 0
    cdef int64_t rss[4]
    cdef Py_ssize_t g, u, d, t
    cdef uint64_t v, w, x, e, pfn, addr
    cdef uint64_t *pud
    cdef uint64_t *pmd
    cdef uint64_t *pte
    cdef int64_t i
    memset(rss, 0, sizeof(rss))
    if _scan(NONE_TABLE, PT_PTRS_PER_TABLE, &i) or i != 0 or \
            _scan(GUARD_TABLE, PT_PTRS_PER_TABLE, &i) or i != PT_PTRS_PER_TABLE:
        raise InvariantError("a canonical shared PTE table was written")
    for g in range(PT_PTRS_PER_TABLE):
        v = mm.pgd[g]
        if v == 0:
            continue
        if g >= PT_PTRS_PER_TABLE // 2 or (v & ~PTE_PFN_MASK) != PTE_TABLE:
            raise InvariantError(f"bad PGD entry {g}: {v:#x}")
        nud += 1
        pud = entry_table(v)
        for u in range(PT_PTRS_PER_TABLE):
            w = pud[u]
            if w == 0:
                continue
            if (w & ~PTE_PFN_MASK) != PTE_TABLE:
                raise InvariantError(f"bad PUD entry {g}/{u}: {w:#x}")
            nmd += 1
            pmd = entry_table(w)
            for d in range(PT_PTRS_PER_TABLE):
                x = pmd[d]
                addr = (<uint64_t>g << PT_PGDIR_SHIFT) | (<uint64_t>u << PT_PUD_SHIFT) \
                    | (<uint64_t>d << PT_PMD_SHIFT)
                if x == 0:
                    continue
                if pmd_is_huge(x):
                    pfn = pte_pfn(x)
                    if pfn & (PT_HPAGE_NR - 1) or pfn + PT_HPAGE_NR > <uint64_t>fs.high:
                        raise InvariantError(f"huge PMD at {addr:#x}: pfn {pfn:#x}")
                    if pfn_is_zero(pfn):
                        npt += 1
                        ndeposit += 1
                        continue
                    for i in range(PT_HPAGE_NR):
                        if fs.refcount[pfn + i] <= 0 or \
                                _kind(fs, pfn + i) != _kind(fs, pfn):
                            raise InvariantError(f"huge PMD at {addr:#x}: frame "
                                                 f"{pfn + i:#x} free or mixed kind")
                        if maps != NULL:
                            maps[pfn + i] += 1
                    if _kind(fs, pfn) == FRAME_ANON:
                        npt += 1
                        ndeposit += 1
                    rss[_kind(fs, pfn)] += PT_HPAGE_NR
                    continue
                if (x & ~PTE_PFN_MASK) == PTE_TABLE | PMD_SHARED_TABLE:
                    if entry_table(x) != NONE_TABLE and entry_table(x) != GUARD_TABLE:
                        raise InvariantError(f"shared PMD entry at {addr:#x} names no "
                                             f"canonical table: {x:#x}")
                    nshared += 1
                elif (x & ~PTE_PFN_MASK) != PTE_TABLE:
                    raise InvariantError(f"bad PMD entry at {addr:#x}: {x:#x}")
                npt += 1
                pte = entry_table(x)
                for t in range(PT_PTRS_PER_TABLE):
                    e = pte[t]
                    if e == 0:
                        continue
                    if not pte_present(e):
                        if swp_type(e) != SWP_TYPE_PTE_MARKER:
                            swap += 1
                        elif swp_offset(e) == 0 or \
                                swp_offset(e) & ~(<uint64_t>PTE_MARKER_MASK):
                            raise InvariantError(f"bad marker at {addr:#x}+{t}: {e:#x}")
                        continue
                    pfn = pte_pfn(e)
                    if e & PTE_PSE:
                        raise InvariantError(f"PSE in a PTE at {addr:#x}+{t}")
                    if pfn == FRAME_ZERO_PFN:
                        continue
                    if pfn_is_zero(pfn):
                        raise InvariantError(f"PTE at {addr:#x}+{t} maps the huge zero page")
                    if pfn >= <uint64_t>fs.high or fs.refcount[pfn] <= 0:
                        raise InvariantError(f"PTE at {addr + (t << 12):#x} maps free "
                                             f"pfn {pfn:#x}")
                    if maps != NULL:
                        maps[pfn] += 1
                    rss[_kind(fs, pfn)] += 1
    if (nud, nmd, npt) != (mm.nr_pud_tables, mm.nr_pmd_tables, mm.nr_pte_tables):
        raise InvariantError(
            f"tables: counted pud/pmd/pte {mm.nr_pud_tables}/{mm.nr_pmd_tables}/"
            f"{mm.nr_pte_tables}, found {nud}/{nmd}/{npt}")
    if nshared != mm.nr_shared_pte_tables:
        raise InvariantError(f"shared PTE tables: counted {mm.nr_shared_pte_tables}, "
                             f"found {nshared}")
    if 1 + nud + nmd + npt - nshared - ndeposit != mm.nr_host_tables:
        raise InvariantError(f"host tables: counted {mm.nr_host_tables}, found "
                             f"{1 + nud + nmd + npt - nshared - ndeposit}")
    for i in range(FRAME_ANON, FRAME_SHMEM + 1):
        if rss[i] != mm.rss[i]:
            raise InvariantError(f"rss[{i}] is {mm.rss[i]}, found {rss[i]}")
    if swap != mm.swap_ents:
        raise InvariantError(f"swap_ents is {mm.swap_ents}, found {swap}")
    return 0


cdef int check_tables(pt_mm *mm) except -1:
    """PageTables.check(): tally_tables(), then that each frame mapped here has a mapcount
    covering these mappings and a refcount covering its mapcount."""
    cdef frame_store *fs = mm.fs
    cdef int32_t *maps = <int32_t *>calloc(fs.capacity, sizeof(int32_t))
    cdef int64_t pfn
    if maps == NULL:
        raise MemoryError()
    try:
        tally_tables(mm, maps)
        for pfn in range(fs.high):
            if maps[pfn] and (fs.mapcount[pfn] < maps[pfn] or
                              fs.refcount[pfn] < fs.mapcount[pfn]):
                raise InvariantError(
                    f"pfn {pfn:#x}: {maps[pfn]} mappings here, mapcount "
                    f"{fs.mapcount[pfn]}, refcount {fs.refcount[pfn]}")
    finally:
        free(maps)
    return 0
