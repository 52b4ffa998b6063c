"""x86-64 page tables and what walks them (arch/x86/include/asm/pgtable_64.h, mm/pagewalk.c).

Was ptengine._core: the encoding (entry.pxd), frames, tables, the generic walk, the
syscalls' walkers, the /proc walks, and the Python face (pagetables: Frames, PageTables). This package re-exports what tests and tools use
from Python: Frames, PageTables, the entry/frame/walker constants and the encoders."""
from .entry import *  # noqa: F401,F403 (the Python copies of entry.pxd's constants)
from .pagetables import Frames, PageTables  # noqa: F401
