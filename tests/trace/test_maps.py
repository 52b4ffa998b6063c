"""Listings in, MM out: maps, smaps and gdb listings parsed and rebuilt in the simulator.

The expected text is always the kernel's own (the [vsyscall] gate line included, which
build_mm() keeps as the mm's gate, not as a VMA): a live process's /proc/PID/maps (through
ptengine.live's server) or a program stopped at its first instruction under gdb. The
rebuilt MM must print it back line for line, and must go on behaving like the process (a
merge that depends on what maps cannot show: the anon_vma two split halves share).
"""
import os
import shutil
import subprocess

import pytest

import ptengine as pt
from ptengine.trace import maps

P = pt.PAGE_SIZE
RW = pt.PROT_READ | pt.PROT_WRITE
ANON = pt.MAP_PRIVATE | pt.MAP_ANONYMOUS
FAR = 0x100000000000          # an empty page-table slot of the live server (see conftest)


def _scenario(mm):
    """  FAR: [ rw | r | rw ]  (one mapping, all written, middle made read-only)
         +8:  [ guard (PROT_NONE) | rw ]   (a thread stack as glibc <= 2.41 makes it)"""
    a = mm.mmap(FAR, 3 * P, RW, ANON | pt.MAP_FIXED_NOREPLACE)
    mm.write(a, b"x" * (3 * P))
    mm.mprotect(a + P, P, pt.PROT_READ)
    s = mm.mmap(FAR + 8 * P, 4 * P, pt.PROT_NONE, ANON | pt.MAP_FIXED_NOREPLACE)
    mm.mprotect(s + P, 3 * P, RW)
    mm.write(s + 3 * P, b"y")
    return a, s


def test_live_maps_rebuilt_line_for_line_and_behaving_alike(live):
    a, s = _scenario(live)
    text = live.maps()
    sim = maps.build_mm(maps.parse(text))
    assert sim.maps() == text
    # The three pieces came from one mapping and share its anon_vma: making the middle
    # writable again merges them back into one VMA in the kernel, and must in the rebuilt
    # MM (it can only if build_mm() gave the split halves one anon_vma).
    for mm in (live, sim):
        mm.mprotect(a + P, P, RW)
    assert sim.maps() == live.maps()
    assert sim.find_vma(a).start == a and sim.find_vma(a).end == a + 3 * P
    # The guard (never written, no VM_ACCOUNT) does not merge with the stack above it when
    # both become PROT_NONE... in neither.
    for mm in (live, sim):
        mm.mprotect(s + P, 3 * P, pt.PROT_NONE)
    assert sim.maps() == live.maps()


def test_live_smaps_gives_exact_flags(live):
    _scenario(live)
    text = live.smaps()
    entries = maps.parse(text)
    assert all(e.vmflags for e in entries)
    sim = maps.build_mm(entries)
    kernel = [l for l in text.splitlines() if l.startswith("VmFlags:")]
    simulated = [l for l in sim.smaps().splitlines() if l.startswith("VmFlags:")]
    assert simulated == kernel
    # The gate area ([vsyscall]) is printed but is not a VMA of the mm.
    assert sim.map_count == len(entries) - sum(e.special_name == maps.GATE for e in entries)
    assert sim.maps() == live.maps()


@pytest.mark.skipif(not shutil.which("gdb"), reason="gdb is not installed")
def test_gdb_listing_of_a_program_at_its_first_instruction():
    """gdb prints no device or inode: build_mm() takes them from the host files, so the
    rebuilt maps equal the kernel's (read by gdb's python at the same stop)."""
    script = ("python import gdb; print('KERNEL'); "
              "print(open('/proc/%d/maps' % gdb.selected_inferior().pid).read(), end='')")
    out = subprocess.run(["gdb", "-nx", "-batch", "-ex", "starti", "-ex", "info proc mappings",
                          "-ex", script, "/bin/true"],
                         capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, LC_ALL="C")).stdout
    listing, kernel = out.split("KERNEL\n")
    entries = maps.parse(listing)
    assert [(e.start, e.end) for e in entries] == \
        [(e.start, e.end) for e in maps.parse(kernel)]
    sim = maps.build_mm(entries)
    assert sim.maps() == kernel


# A 32-bit ARM Android process prints 8-digit addresses; the names are what such listings
# hold (ashmem, dalvik spaces, anon names). The format is fs/proc/task_mmu.c's.
ANDROID32 = """\
12c00000-12e00000 rw-p 00000000 00:04 9437       /dev/ashmem/dalvik-main space (region space) (deleted)
12e00000-2ac00000 ---p 00200000 00:04 9437       /dev/ashmem/dalvik-main space (region space) (deleted)
70a3c000-70c23000 rw-p 00000000 b3:19 1106       /system/framework/arm/boot.art
e7100000-e7180000 rw-p 00000000 00:00 0          [anon:libc_malloc]
ee7f0000-ee7f1000 ---p 00000000 00:00 0          [anon:thread stack guard]
ee7f1000-ee8ee000 rw-p 00000000 00:00 0 
f0a2e000-f0a2f000 r--p 00000000 00:00 0          [vvar]
f0a2f000-f0a30000 r-xp 00000000 00:00 0          [vdso]
ff5ab000-ff5cc000 rw-p 00000000 00:00 0          [stack]
ffff0000-ffff1000 r-xp 00000000 00:00 0          [vectors]
"""


def test_32bit_listing_parsed_and_rebuilt():
    entries = maps.parse(ANDROID32)
    assert [(e.start, e.end) for e in entries][:2] == [(0x12c00000, 0x12e00000),
                                                      (0x12e00000, 0x2ac00000)]
    assert entries[1].offset == 0x200000 and entries[2].dev == (0xb3, 0x19)
    assert entries[2].ino == 1106 and entries[3].anon_name == "libc_malloc"
    files = maps.FileTable(pt.System(), host=False)
    sim = maps.build_mm(entries, files.system, files=files)
    # The simulator prints as a 64-bit kernel does (names from column 73, not 49), so the
    # columns are compared.
    columns = lambda es: [(e.start, e.end, e.perms, e.offset, e.dev, e.ino, e.name)
                          for e in es]
    assert columns(maps.parse(sim.maps())) == columns(entries)
    # One inode per file, as long as the largest extent mapped of it.
    ashmem = files.inode("/dev/ashmem/dalvik-main space (region space)")
    assert ashmem.size == 0x200000 + (0x2ac00000 - 0x12e00000)
    assert sim.find_vma(0x12c00000).file.inode is sim.find_vma(0x12e00000).file.inode
    assert sim.map_count == len(entries)


def test_special_mappings_and_the_break():
    sim = maps.build_mm(maps.parse(ANDROID32))
    vdso = sim.find_vma(0xf0a2f000)
    assert vdso.name == "[vdso]" and vdso.flags & pt.VM_DONTEXPAND
    stack = sim.find_vma(0xff5ab000)
    assert stack.flags & pt.VM_GROWSDOWN
    # No [heap] line: the break starts after the lowest (undeleted) file's last VMA.
    assert sim.start_brk == sim.brk_end == 0x70c23000
    heap = "55555555a000-55555557b000 rw-p 00000000 00:00 0                          [heap]\n"
    sim = maps.build_mm(maps.parse(heap))
    assert (sim.start_brk, sim.brk_end) == (0x55555555a000, 0x55555557b000)
    assert sim.brk(0x55555557c000) == 0x55555557c000
    assert sim.map_count == 1 and sim.find_vma(0x55555557b000).end == 0x55555557c000


def test_gdb_listing_without_perms_is_refused():
    old = ("Mapped address spaces:\n\n          Start Addr           End Addr       Size"
           "     Offset objfile\n      0x555555554000     0x555555556000     0x2000        "
           "0x0 /usr/bin/true\n")
    with pytest.raises(ValueError, match="Perms"):
        maps.parse(old)


def test_bad_input():
    with pytest.raises(ValueError):
        maps.parse("not a listing\n")
    with pytest.raises(TypeError):
        maps.parse(b"00400000-00401000 r--p 00000000 00:00 0\n")
