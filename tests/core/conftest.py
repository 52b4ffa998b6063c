"""Fixtures for the compiled core's tests: fresh Frames and PageTables, and the PTE flag
sets a VMA's vm_page_prot would give (arch/x86/include/asm/pgtable_types.h PAGE_*)."""
import pytest

from ptengine import core as _core

PAGE = 4096
PMD = 1 << 21
PUD = 1 << 30
PGDIR = 1 << 39
# A 512 GiB-aligned address (so it starts a PGD, a PUD and a PMD span alike).
BASE = 0x7F0000000000

# PAGE_COPY-like prot for a private writable anon VMA: writes go through the fault path.
PROT_PRIVATE = _core.PTE_PRESENT | _core.PTE_USER | _core.PTE_ACCESSED | _core.PTE_NX
# A writable present PTE as a write fault leaves it.
PTE_RW_PAGE = PROT_PRIVATE | _core.PTE_RW | _core.PTE_DIRTY


@pytest.fixture
def frames():
    return _core.Frames()


@pytest.fixture
def pt(frames):
    tables = _core.PageTables(frames)
    yield tables
    tables.check()
    frames.check([tables])


@pytest.fixture
def pt2(frames, pt):
    child = _core.PageTables(frames)
    yield child
    child.check()
    frames.check([pt, child])
    child.zap(0, _core.USER_END, _core.ZAP_DROP_MARKERS)   # leave pt's own check exact
