"""What a VMA and an MM say at a prompt: the VMA its maps range and perms, its smaps VmFlags
mnemonics and its name (and a file VMA its offset and path); the MM its map_count, VmPTE
and VmRSS from its counters. Simulator only: the representation is the simulator's own."""
import ptengine
from ptengine.constants import (MADV_GUARD_INSTALL, MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED,
                                PAGE_SIZE, PROT_READ, PROT_WRITE)
from ptengine.proc.text import parse_smaps

P = PAGE_SIZE
RW, ANON = PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS


def expected(mm, vma, *, offset):
    """The repr built from the mm's own maps and smaps text for this VMA."""
    entry = next(e for e in parse_smaps(mm.smaps()) if e.start == vma.start)
    line = next(l for l in mm.maps().splitlines() if l.startswith(f"{vma.start:08x}-"))
    fields = line.split()
    shown = fields[:3] if offset else fields[:2]
    shown += entry.vmflags
    return f"VMA({' '.join(shown + ([vma.name] if vma.name else []))})"


def test_anonymous_vma_with_guard_and_name():
    mm = ptengine.System(anon_vma_name=True).spawn()
    a = mm.mmap(0, 10 * P, RW, ANON)
    mm.madvise(a, P, MADV_GUARD_INSTALL)
    mm.set_anon_name(a, 10 * P, "heap")
    vma = mm.find_vma(a)
    text = repr(vma)
    assert text == f"VMA({a:x}-{a + 10 * P:x} rw-p rd wr mr mw me gu ac [anon:heap])"
    assert text == expected(mm, vma, offset=False)
    assert "gu" not in repr(ptengine.VMA(a, a + P, vma.flags & ~ptengine.VM_MAYBE_GUARD, 0))
    mm.exit()


def test_file_vma_shows_offset_and_path():
    system = ptengine.System()
    f = system.create_file("data.bin", size=8 * P)
    mm = system.spawn()
    a = mm.mmap(0, 4 * P, PROT_READ, MAP_SHARED, f, 2 * P)
    vma = mm.find_vma(a)
    text = repr(vma)
    assert text == expected(mm, vma, offset=True)
    assert f" r--s 00002000 " in text and text.endswith(f" {vma.name})")
    mm.exit()


def test_mm_repr_follows_status_and_exit():
    mm = ptengine.System().spawn()
    a = mm.mmap(0, 3 * P, RW, ANON)
    mm.touch(a, 2 * P, write=True)
    mm.mprotect(a + P, P, PROT_READ)
    status = mm.status()
    assert status["map_count"] == 3 and status["VmRSS"] == 2 * P // 1024
    assert repr(mm) == (f"<MM map_count=3 VmPTE={status['VmPTE']} kB "
                        f"VmRSS={status['VmRSS']} kB>")
    mm.exit()
    assert repr(mm) == "<MM dead>"
