"""The x86-64 entry encoding that _core.pxd documents: present-PTE bits, the swap layout
with its inverted offset, and the PTE marker values."""
from hypothesis import given, strategies as st
import numpy as np
import pytest

from ptengine import core as _core
from .conftest import BASE, PAGE, PROT_PRIVATE


def test_marker_raw_values():
    assert _core.make_marker(_core.PTE_MARKER_GUARD) == 0xFFFFFFFFFFFFF600
    assert _core.make_marker(_core.PTE_MARKER_POISONED) == 0xFFFFFFFFFFFFFA00
    assert _core.make_marker(_core.PTE_MARKER_UFFD_WP) == 0xFFFFFFFFFFFFFC00
    assert _core.GUARD_PTE == 0xFFFFFFFFFFFFF600
    assert _core.POISON_PTE == 0xFFFFFFFFFFFFFA00
    assert _core.UFFD_WP_PTE == 0xFFFFFFFFFFFFFC00
    # A marker is a swap entry of the last type, whose offset is the marker bitmask.
    assert _core.decode_swap_pte(_core.GUARD_PTE) == (31, 4, 0)
    assert _core.make_swap_pte(31, 4) == _core.GUARD_PTE


def test_present_bits_one_per_line():
    bits = {
        "PTE_PRESENT": 0, "PTE_RW": 1, "PTE_USER": 2, "PTE_PWT": 3, "PTE_PCD": 4,
        "PTE_ACCESSED": 5, "PTE_DIRTY": 6, "PTE_PSE": 7, "PTE_GLOBAL": 8,
        "PTE_PROTNONE": 8, "PTE_SPECIAL": 9, "PTE_UFFD_WP": 10, "PTE_SOFT_DIRTY": 11,
        "PTE_NX": 63,
    }
    for name, bit in bits.items():
        assert getattr(_core, name) == 1 << bit, name
    assert _core.PTE_PFN_MASK == ((1 << 52) - 1) & ~0xFFF
    assert _core.PTE_TABLE == 0x67
    assert (_core.SWP_SOFT_DIRTY, _core.SWP_UFFD_WP, _core.SWP_EXCLUSIVE) == (2, 4, 8)


@given(st.integers(0, 31), st.integers(0, (1 << 50) - 2))
def test_swap_round_trip(swp_type, offset):
    raw = _core.make_swap_pte(swp_type, offset)
    # Never present, never PROT_NONE: the offset is inverted, so bits 0 and 8 stay clear.
    assert raw & (_core.PTE_PRESENT | _core.PTE_PROTNONE) == 0
    assert raw >> 59 == swp_type
    assert (~raw >> 9) & ((1 << 50) - 1) == offset
    assert _core.decode_swap_pte(raw) == (swp_type, offset, 0)
    assert _core.decode_swap_pte(raw | _core.SWP_SOFT_DIRTY)[2] == _core.SWP_SOFT_DIRTY


def test_swap_entry_inversion_edges():
    # ~0 in the offset field: an all-zero swap entry still has bits set ...
    assert _core.make_swap_pte(0, 0) == ((1 << 50) - 1) << 9
    # ... and the one (type, offset) pair that would encode as none is refused.
    with pytest.raises(ValueError):
        _core.make_swap_pte(0, (1 << 50) - 1)
    assert _core.make_swap_pte(1, (1 << 50) - 1) == 1 << 59


def test_present_pte_is_pfn_or_flags(pt, frames):
    pfn = frames.alloc(_core.FRAME_ANON)
    flags = PROT_PRIVATE | _core.PTE_RW | _core.PTE_DIRTY
    pt.map_page(BASE, pfn, flags)
    frames.put(pfn)
    assert pt.get_pte(BASE) == (pfn << 12) | flags
    assert pt.lookup(BASE) == (_core.ENTRY_PRESENT, pfn, (pfn << 12) | flags)


def test_protnone_pte_has_bit8_and_no_present_bit(pt, frames):
    pfn = frames.alloc(_core.FRAME_ANON)
    flags = _core.PTE_PROTNONE | _core.PTE_USER | _core.PTE_ACCESSED
    pt.map_page(BASE, pfn, flags)
    frames.put(pfn)
    raw = pt.get_pte(BASE)
    assert raw & _core.PTE_PRESENT == 0 and raw & 0x100
    assert pt.lookup(BASE)[:2] == (_core.ENTRY_PROTNONE, pfn)
    # pte_present() holds for it: pagemap reports it present.
    out = np.zeros(1, np.uint64)
    pt.pagemap(BASE, BASE + PAGE, out)
    assert int(out[0]) >> 63 == 1 and int(out[0]) & ((1 << 55) - 1) == pfn


def test_lookup_kinds_for_markers_and_swap(pt):
    pt.set_marker(BASE, _core.PTE_MARKER_POISONED)
    pt.set_swap(BASE + PAGE, 3, 0x1234)
    assert pt.lookup(BASE) == (_core.ENTRY_MARKER, 2, _core.POISON_PTE)
    kind, offset, raw = pt.lookup(BASE + PAGE)
    assert (kind, offset) == (_core.ENTRY_SWAP, 0x1234)
    assert raw == _core.make_swap_pte(3, 0x1234)
    assert pt.lookup(BASE + 2 * PAGE) == (_core.ENTRY_NONE, 0, 0)
    assert pt.swap_ents == 1
    pt.zap(BASE, BASE + 2 * PAGE)
    assert pt.swap_ents == 0


def test_near_guard_values_are_not_guards(pt):
    """Entries one bit away from the guard value are other entries: install stops there.
    (The vectorised scan must tell them apart from GUARD_PTE.)"""
    for bit in range(64):
        raw = _core.GUARD_PTE ^ (1 << bit)
        if raw & (_core.PTE_PRESENT | _core.PTE_PROTNONE):
            continue
        t, off, _ = _core.decode_swap_pte(raw)
        if t == 31:
            continue   # still a marker; a different one is covered elsewhere
        pt.set_swap(BASE, t, off, raw & 0xE)
        assert pt.install_guards(BASE, BASE + 4 * PAGE) == BASE, hex(raw)
        pt.zap(BASE, BASE + 4 * PAGE, _core.ZAP_DROP_MARKERS)
