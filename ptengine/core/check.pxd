# cython: language_level=3
"""The debug checks of the core: mm/debug.c (CONFIG_DEBUG_VM), see check.pyx."""
from libc.stdint cimport int32_t

from ptengine.core.frames cimport frame_store
from ptengine.core.tables cimport pt_mm

# Frames.check(): the store, and the mappings of the n trees mms[0..n) over it.
cdef int check_frames(frame_store *fs, pt_mm **mms, Py_ssize_t n) except -1
# Walk the whole tree: check every entry's form, recount tables, RSS and swap entries
# against mm's counters, and add each frame's mappings to maps[pfn] (maps may be NULL).
cdef int tally_tables(pt_mm *mm, int32_t *maps) except -1
# PageTables.check(): tally_tables(), then the frames' mapcount and refcount against it.
cdef int check_tables(pt_mm *mm) except -1
