# cython: language_level=3
"""Argument checking of the Python layer (the only place Python objects become C integers):
TypeError for non-integers, ValueError for values out of range or misaligned.
"""
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint64_t

cdef uint64_t _u64(object value, str name, uint64_t limit) except? 0xFFFFFFFFFFFFFFFF
cdef uint64_t _page_addr(object value, str name) except? 0xFFFFFFFFFFFFFFFF
cdef int _user_range(object start, object end, uint64_t *s, uint64_t *e) except -1
cdef uint64_t _one_page(object addr) except? 0xFFFFFFFFFFFFFFFF
cdef uint64_t _leaf_flags(object value) except? 0xFFFFFFFFFFFFFFFF
cdef int _frame_kind(object kind) except -1
cdef int _check_err(int64_t r) except -1
