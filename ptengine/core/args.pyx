# cython: language_level=3
"""Argument checking of ptengine.core's Python layer (mirrors no kernel file).

The validation (for pagetables.pyx, entry.pyx) that keeps any input from reaching the
nogil walkers unchecked.
"""
from cpython.long cimport PyLong_AsUnsignedLongLong, PyLong_CheckExact
from cpython.number cimport PyNumber_Index
from libc.errno cimport ENOMEM
from libc.stdint cimport int64_t, uint64_t

from ptengine.core.entry cimport *
from ptengine.core.frames cimport FRAME_ANON, FRAME_SHMEM


# ---------------------------------------------------------------------------------------
cdef uint64_t _u64(object value, str name, uint64_t limit) except? 0xFFFFFFFFFFFFFFFF:
    """An integer in [0, limit]; TypeError for non-integers, ValueError when out of range."""
    cdef uint64_t u
    if PyLong_CheckExact(value):          # the common case, without Python arithmetic
        try:
            u = PyLong_AsUnsignedLongLong(value)
        except OverflowError:
            pass                          # negative or too wide: reported below
        else:
            if u <= limit:
                return u
    try:
        v = PyNumber_Index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}") from None
    if v < 0 or v > limit:
        raise ValueError(f"{name} {v:#x} out of range [0, {limit:#x}]")
    return <uint64_t>v


cdef uint64_t _page_addr(object value, str name) except? 0xFFFFFFFFFFFFFFFF:
    """A page-aligned user address (the end of user space allowed)."""
    cdef uint64_t a = _u64(value, name, USER_END)
    if a & (PAGE_SIZE_ - 1):
        raise ValueError(f"{name} {a:#x} is not page aligned")
    return a


cdef int _user_range(object start, object end, uint64_t *s, uint64_t *e) except -1:
    s[0] = _page_addr(start, "start")
    e[0] = _page_addr(end, "end")
    if s[0] > e[0]:
        raise ValueError(f"start {s[0]:#x} > end {e[0]:#x}")
    return 0


cdef uint64_t _one_page(object addr) except? 0xFFFFFFFFFFFFFFFF:
    cdef uint64_t a = _page_addr(addr, "addr")
    if a >= USER_END:
        raise ValueError(f"addr {a:#x} is beyond user space")
    return a


cdef uint64_t _leaf_flags(object value) except? 0xFFFFFFFFFFFFFFFF:
    """PTE flags for a present or PROT_NONE leaf: no pfn bits, no PSE, P or PROTNONE set."""
    cdef uint64_t f = _u64(value, "pte_flags", 0xFFFFFFFFFFFFFFFF)
    if f & (PTE_PFN_MASK | PTE_PSE):
        raise ValueError(f"pte_flags {f:#x} has pfn or PSE bits")
    if not f & (PTE_PRESENT | PTE_PROTNONE):
        raise ValueError(f"pte_flags {f:#x} is neither present nor PROT_NONE")
    return f


cdef int _frame_kind(object kind) except -1:
    cdef int k = <int>_u64(kind, "kind", FRAME_SHMEM)
    if k < FRAME_ANON:
        raise ValueError(f"bad frame kind {k}")
    return k


cdef int _check_err(int64_t r) except -1:
    if r == -ENOMEM:
        raise MemoryError("ptengine: out of memory for page tables or frames")
    if r < 0:
        raise OSError(-r, "ptengine core error")
    return 0
