# cython: language_level=3
"""The Python face of the core: Frames (a frame_store) and PageTables (a pt_mm), with
every argument validated before the nogil code runs.
"""
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint64_t

from ptengine.core.frames cimport frame_store
from ptengine.core.tables cimport pt_mm

cdef class Frames:
    cdef frame_store fs
    cdef int64_t _pfn(self, object pfn, bint allow_zero) except -1

cdef class PageTables:
    cdef pt_mm mm
    cdef readonly Frames frames
    cdef uint64_t *_none_pte(self, uint64_t a) except NULL
    cdef int _partial_huge(self, uint64_t s, uint64_t e) except -1
    cdef int _require_none(self, uint64_t s, uint64_t e) except -1
