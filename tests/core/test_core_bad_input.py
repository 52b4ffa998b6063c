"""Nothing a caller passes may crash the interpreter: bad values are ValueError, bad
types TypeError (or MemoryError when memory truly runs out)."""
import numpy as np
import pytest

from ptengine import core as _core
from ptengine.errors import InvariantError
from .conftest import BASE, PAGE, PMD, PROT_PRIVATE

TOP = 1 << 47
BAD_ADDRS = [1, PAGE + 1, -PAGE, TOP + PAGE, 1 << 64, 1 << 200, -1]
BAD_TYPES = [1.0, "4096", None, b"\x00", [0], object()]


def range_methods(pt, pt2):
    out = np.zeros(1, np.uint64)
    return {
        "install_guards": lambda s, e: pt.install_guards(s, e),
        "remove_guards": lambda s, e: pt.remove_guards(s, e),
        "zap": lambda s, e: pt.zap(s, e, 0),
        "free_pgtables": lambda s, e: pt.free_pgtables(s, e, 0, 0),
        "copy_range": lambda s, e: pt.copy_range(pt2, s, e),
        "fault_anon": lambda s, e: pt.fault_anon(s, e, True, PROT_PRIVATE),
        "change_prot": lambda s, e: pt.change_prot(s, e, 0, _core.PTE_RW),
        "pagemap": lambda s, e: pt.pagemap(s, e, out),
        "smaps_stats": lambda s, e: pt.smaps_stats(s, e),
        "count": lambda s, e: pt.count(s, e),
        "dump": lambda s, e: pt.dump(s, e),
        "move_range": lambda s, e: pt.move_range(s, e, PAGE),
    }


@pytest.mark.parametrize("name", sorted(range_methods(None, None)))
def test_ranges_are_validated(pt, pt2, name):
    call = range_methods(pt, pt2)[name]
    for bad in BAD_ADDRS:
        with pytest.raises(ValueError):
            call(bad, BASE)
        with pytest.raises(ValueError):
            call(BASE, bad)
    for bad in BAD_TYPES:
        with pytest.raises(TypeError):
            call(bad, BASE)
        with pytest.raises(TypeError):
            call(BASE, bad)
    if name != "move_range":
        with pytest.raises(ValueError):
            call(BASE + PAGE, BASE)            # reversed
    assert pt.pgtables_bytes == 0              # nothing happened


def test_huge_ranges_are_fine(pt):
    # the whole user address space is a valid (if empty) range
    assert pt.remove_guards(0, TOP) == 0
    assert pt.zap(0, TOP, _core.ZAP_DROP_MARKERS) == 0
    assert pt.count(0, TOP)["none"] == TOP // PAGE
    pt.free_pgtables(0, TOP, 0, 0)
    assert pt.install_guards(TOP - PAGE, TOP) == TOP
    assert pt.pgtables_bytes == 3 * PAGE
    with pytest.raises(ValueError):
        pt.move_range(TOP - PAGE, TOP - 2 * PAGE, 2 * PAGE)   # would run past the top
    with pytest.raises(ValueError):
        pt.move_range(0, PAGE, TOP)


@pytest.mark.parametrize("call", [
    lambda pt, f: pt.get_pte(TOP),
    lambda pt, f: pt.get_pmd(BASE + 1),
    lambda pt, f: pt.lookup(-1),
    lambda pt, f: pt.set_marker(BASE, 0),
    lambda pt, f: pt.set_marker(BASE, 8),
    lambda pt, f: pt.set_swap(BASE, 31, 0),
    lambda pt, f: pt.set_swap(BASE, 0, 1, 1),
    lambda pt, f: pt.set_swap(BASE, 0, 1 << 50),
    lambda pt, f: pt.map_page(BASE, 0, PROT_PRIVATE),
    lambda pt, f: pt.map_page(BASE, 12345678, PROT_PRIVATE),
    lambda pt, f: pt.map_page(BASE, f.zero_pfn, PROT_PRIVATE | (5 << 12)),
    lambda pt, f: pt.map_page(BASE, f.zero_pfn, _core.PTE_USER),
    lambda pt, f: pt.map_page(BASE, f.zero_pfn, PROT_PRIVATE | _core.PTE_PSE),
    lambda pt, f: pt.map_page(BASE, f.zero_pfn, -1),
    lambda pt, f: pt.map_huge_pmd(BASE, f.zero_pfn, PROT_PRIVATE),
    lambda pt, f: pt.zap(BASE, BASE + PAGE, 64),
    lambda pt, f: pt.zap(BASE, BASE + PAGE, -1),
    lambda pt, f: pt.fault_anon(BASE, BASE + PAGE, True, _core.PTE_PROTNONE),
    lambda pt, f: pt.free_pgtables(BASE, BASE + PAGE, -1, 0),
    lambda pt, f: pt.free_pgtables(BASE, BASE + PAGE, 0, 1 << 48),
    lambda pt, f: f.alloc(0),
    lambda pt, f: f.alloc(4),
    lambda pt, f: f.alloc(1 << 70),
    lambda pt, f: f.get(0),
    lambda pt, f: f.put(99999999),
    lambda pt, f: f.refcount(-5),
    lambda pt, f: f.put_huge(f.zero_pfn),
    lambda pt, f: f.read(f.zero_pfn, 4000, 200),
    lambda pt, f: f.read(f.zero_pfn, 4097, 0),
    lambda pt, f: f.write(f.alloc(1), 4095, b"ab"),
    lambda pt, f: f.copy_data(f.zero_pfn, f.zero_pfn),
    lambda pt, f: f.zero_data(1 << 41),
    lambda pt, f: _core.make_swap_pte(32, 0),
    lambda pt, f: _core.make_marker(9),
    lambda pt, f: _core.decode_swap_pte(0),
])
def test_bad_values(pt, frames, call):
    with pytest.raises(ValueError):
        call(pt, frames)


@pytest.mark.parametrize("call", [
    lambda pt, f: _core.PageTables(None),
    lambda pt, f: _core.PageTables("frames"),
    lambda pt, f: pt.copy_range(None, BASE, BASE + PAGE),
    lambda pt, f: pt.map_page(BASE, 1.5, PROT_PRIVATE),
    lambda pt, f: pt.map_page(BASE, f.zero_pfn, "x"),
    lambda pt, f: pt.set_marker(BASE, None),
    lambda pt, f: pt.zap(BASE, BASE + PAGE, 1.0),
    lambda pt, f: f.alloc("anon"),
    lambda pt, f: f.write(f.alloc(1), 0, "text"),
    lambda pt, f: f.write(f.alloc(1), 0, 12),
    lambda pt, f: f.read("1"),
    lambda pt, f: f.check([object()]),
])
def test_bad_types(pt, frames, call):
    with pytest.raises(TypeError):
        call(pt, frames)


def test_frames_check_rejects_foreign_tables(pt):
    with pytest.raises(ValueError):
        _core.Frames().check([pt])


def test_check_detects_corruption_through_the_public_api(pt, frames):
    """check() recounts from the tree: mapping a frame behind the counters' back (another
    PageTables dropping its frames) is reported, not ignored."""
    pfn = frames.alloc(_core.FRAME_ANON)
    pt.map_page(BASE, pfn, PROT_PRIVATE)
    frames.put(pfn)
    pt.check()
    other = _core.PageTables(frames)
    other.map_page(BASE, pfn, PROT_PRIVATE)
    with pytest.raises(InvariantError):
        frames.check([pt])
    del other                                   # dealloc drops its reference
    frames.check([pt])
    assert frames.refcount(pfn) == 1


def test_dealloc_releases_every_reference(frames):
    pt = _core.PageTables(frames)
    pt.fault_anon(BASE, BASE + 64 * PAGE, True, PROT_PRIVATE)
    head = frames.alloc_huge(_core.FRAME_ANON)
    pt.map_huge_pmd(BASE + (1 << 21), head, PROT_PRIVATE)
    frames.put_huge(head)
    pt.install_guards(BASE + (2 << 21), BASE + (3 << 21))
    assert frames.nr_used == 64 + 512
    del pt
    assert frames.nr_used == 0
    frames.check()


# --- every entry point, fed strangers ------------------------------------------------------
STRANGERS = [None, "x", 1.5, object(), -1, 1 << 64, 1 << 200, [None], [object()], (1, 2),
             b"\x00" * 8, np.zeros(1, np.int8)]


def _entry_points():
    """(owner, name, parameters) of every def in _core: module functions and the methods of
    Frames and PageTables, parameters read from the embedded signatures."""
    import re
    for owner in (_core, _core.Frames, _core.PageTables):
        for name, fn in sorted(vars(owner).items()):
            doc = (getattr(fn, "__doc__", None) or "").split("\n")[0]
            m = re.match(r"(?:\w+\.)?(\w+)\((.*)\)", doc)
            if m is None or name.startswith("_") or m.group(1) != name:
                continue
            params = [p.split("=")[0].split()[-1] for p in m.group(2).split(",") if p.strip()]
            yield owner, name, [p for p in params if p != "self"]


def _plausible(name, pt, pt2, frames, pfn):
    table = {"start": BASE, "addr": BASE, "old_start": BASE, "end": BASE + PAGE,
             "new_start": BASE + PMD, "length": PAGE, "pfn": pfn, "head": pfn,
             "src_pfn": pfn, "dst_pfn": pfn, "kind": _core.FRAME_ANON,
             "pte_flags": PROT_PRIVATE, "bits": _core.PTE_MARKER_GUARD, "data": b"x",
             "dst": pt2, "out": np.zeros(1, np.uint64), "tables": [pt, pt2],
             "raw": _core.make_swap_pte(0, 1), "n": 1, "frames": frames}
    return table.get(name, 0)


def test_every_entry_point_refuses_strangers_and_keeps_invariants(monkeypatch):
    """Each def of the core, called once per parameter and stranger (the other arguments
    plausible) on tables holding pages, guards and a swap entry: it may raise, but
    afterwards both tables and the frames pass check(), and no exception was lost inside
    C code (sys.unraisablehook, what prints "Exception ignored")."""
    lost = []
    monkeypatch.setattr("sys.unraisablehook", lambda u: lost.append(repr(u.exc_value)))
    problems, calls = [], 0
    for owner, name, params in _entry_points():
        for i in range(len(params)):
            for stranger in STRANGERS:
                frames = _core.Frames()
                pt, pt2 = _core.PageTables(frames), _core.PageTables(frames)
                pt.fault_anon(BASE, BASE + 4 * PAGE, True, PROT_PRIVATE)
                pt.install_guards(BASE + 8 * PAGE, BASE + 10 * PAGE)
                pt.set_swap(BASE + 12 * PAGE, 0, 1)
                pfn = frames.alloc(_core.FRAME_ANON)
                target = {_core.Frames: frames, _core.PageTables: pt}.get(owner, _core)
                args = [_plausible(p, pt, pt2, frames, pfn) for p in params]
                args[i] = stranger
                calls += 1
                what = f"{getattr(owner, '__name__', owner)}.{name}({params[i]}={stranger!r:.30})"
                try:
                    getattr(target, name)(*args)
                except (TypeError, ValueError, OverflowError, IndexError, MemoryError):
                    pass
                except Exception as e:
                    problems.append(f"{what}: {type(e).__name__}: {e}")
                try:
                    pt.check()
                    pt2.check()
                    frames.check([pt, pt2])
                except AssertionError as e:
                    problems.append(f"{what}: left {type(e).__name__}: {e}")
    assert calls > 500                          # the sweep found the entry points
    assert not problems, "\n".join(problems[:40])
    assert not lost, lost[:10]
