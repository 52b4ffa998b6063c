"""The compiled VMA layer and syscall classes refuse bad arguments with exceptions; no call,
however odd, may crash the interpreter. Each probe runs in a child interpreter, so a crash
shows as a dead child rather than a dead test run."""
import subprocess
import sys
import textwrap

import pytest

PROBES = [
    # (what, code run against `mm`, a fresh MM holding one RW mapping at `a`)
    ("tree insert None", "mm.vma_tree.insert(None)"),
    ("tree remove None", "mm.vma_tree.remove(None)"),
    ("tree set_end None", "mm.vma_tree.set_end(None, 0)"),
    ("tree neighbours of a stranger", "mm.vma_tree.neighbours(VMA(0x1000, 0x2000, 0))"),
    ("tree find negative", "mm.vma_tree.find(-1)"),
    ("tree find huge", "mm.vma_tree.find(1 << 70)"),
    ("tree load into a full tree", "mm.vma_tree.load([VMA(0x1000, 0x2000, 0)])"),
    ("vma_tree replaced by None", "mm.vma_tree = None"),
    ("modify_range None", "mm.modify_range(None, a, a + P)"),
    ("map_range over a VMA", "mm.map_range(a, a + P, 0, 0, None)"),
    ("remove_vmas of nothing", "mm.remove_vmas([])"),
    ("remove_vmas of None", "mm.remove_vmas([None])"),
    ("free_pgtables of None", "mm.free_pgtables([None], 0, 0)"),
    ("anon_vma_prepare None", "mm.anon_vma_prepare(None)"),
    ("guard install on None", "mm._guard_install(None, a, a + P)"),
    ("advise None", "mm._advise_vma(None, a, a + P, 4)"),
    ("mprotect_fixup None", "mm._mprotect_fixup(None, a, a + P, 0)"),
    ("mmap_region at 2**64", "mm._mmap_region(2**64 - P, P, 0, 0, None)"),
    ("VMA copy past its end", "mm.vmas()[0].copy(0, 1)"),
    ("set_start past the end", "mm.vma_tree.set_start(mm.vmas()[0], 1 << 60)"),
]


@pytest.mark.parametrize("what, code", PROBES, ids=[p[0] for p in PROBES])
def test_bad_call_raises_and_never_crashes(what, code):
    program = textwrap.dedent(f"""
        import ptengine as pt
        from ptengine.vma import VMA
        P = pt.PAGE_SIZE
        mm = pt.MM()
        a = mm.mmap(0, 4 * P, pt.PROT_READ | pt.PROT_WRITE, pt.MAP_PRIVATE | pt.MAP_ANONYMOUS)
        before = mm.maps()
        errors = (TypeError, ValueError, AttributeError, OverflowError, OSError, IndexError,
                  AssertionError, pt.InvariantError)
        try:
            {code}
        except errors:
            pass
        # Whatever state the call left, using the mm afterwards raises or works.
        for after in (mm.maps, mm.check, lambda: mm.munmap(a, 4 * P),
                      lambda: mm.mmap(0, P, pt.PROT_READ, pt.MAP_PRIVATE | pt.MAP_ANONYMOUS)):
            try:
                after()
            except errors:
                pass
        print("alive")
    """)
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, f"{what}: exit {out.returncode}\n{out.stderr[-2000:]}"
    assert "alive" in out.stdout
