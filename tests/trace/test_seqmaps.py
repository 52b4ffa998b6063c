"""/proc/PID/maps read a piece at a time while the address space changes: SeqMaps against
the kernel. The test reads a live process's maps with read()s of assorted sizes and makes
the same mapping changes in the process and in its simulated copy between reads; every
read must return the same bytes from both.
"""
import os

import pytest

import ptengine as pt
from ptengine.trace import maps
from ptengine.trace.seqmaps import SeqMaps

P = pt.PAGE_SIZE
RW = pt.PROT_READ | pt.PROT_WRITE
ANON = pt.MAP_PRIVATE | pt.MAP_ANONYMOUS
FAR = 0x100000000000


def _changes(base):
    """Changes made between reads: (name, args), each on both backends."""
    fixed = ANON | pt.MAP_FIXED_NOREPLACE
    return [
        ("mmap", (base, 2 * P, RW, fixed)),                     # a new line far below
        ("mmap", (base + 4 * P, P, pt.PROT_READ, fixed)),
        ("mprotect", (base, P, pt.PROT_READ)),                  # splits: one more line
        ("munmap", (base + 4 * P, P)),                          # a line goes
        ("mmap", (base + 2 * P, P, RW, fixed)),                 # grows a line (merge)
        ("munmap", (base, 3 * P)),
    ]


@pytest.mark.parametrize("sizes", [(100, 300, 7, 4096, 50), (1, 4095, 4096, 8192),
                                   (65536,), (75, 75, 75)])
def test_reads_across_changes_match_the_kernel(live, sizes):
    # 160 more lines (about 8 KiB of text: more than one page buffer) past the changes.
    many = FAR + (1 << 30)
    live.mmap(many, 160 * P, RW, ANON | pt.MAP_FIXED_NOREPLACE)
    for k in range(0, 160, 2):
        live.mprotect(many + k * P, P, pt.PROT_READ)
    sim = maps.build_mm(maps.parse(live.maps()))
    fd = os.open(f"/proc/{live.pid}/maps", os.O_RDONLY)
    reader = SeqMaps(sim)
    changes = _changes(FAR)
    reads = 0
    try:
        while True:
            size = sizes[reads % len(sizes)]
            kernel = os.read(fd, size).decode()
            assert reader.read(size) == kernel, f"read #{reads} of {size} bytes"
            reads += 1
            if not kernel:
                break
            if changes:
                name, args = changes.pop(0)
                for mm in (live, sim):
                    getattr(mm, name)(*args)
        assert reads > 2
    finally:
        os.close(fd)


def test_text_mixes_two_states(live):
    """A mapping made between reads below the position shows up in no read; one made
    above it is read: the concatenated text is neither state's maps."""
    sim = maps.build_mm(maps.parse(live.maps()))
    fd = os.open(f"/proc/{live.pid}/maps", os.O_RDONLY)
    reader = SeqMaps(sim)
    try:
        first = reader.read(200)
        assert first == os.read(fd, 200).decode()
        low = 0x100000                             # below the position: never read
        high = FAR                                 # above it: read later
        assert sim.vmas()[0].start > low
        for addr in (low, high):
            for mm in (live, sim):
                mm.mmap(addr, P, RW, ANON | pt.MAP_FIXED_NOREPLACE)
        rest = ""
        while True:
            chunk = reader.read(4096)
            assert chunk == os.read(fd, 4096).decode()
            if not chunk:
                break
            rest += chunk
        text = first + rest
        assert f"{low:x}-" not in text and f"{low:x}-" in sim.maps()
        assert f"{high:x}-" in text
        assert text != sim.maps()
    finally:
        os.close(fd)


def test_a_line_longer_than_a_page():
    """The first line always goes out, in a buffer doubled until it fits (seq_read_iter)."""
    mm = pt.MM()
    f = mm.system.create_file("/tmp/" + "x" * 5000, size=P)
    mm.mmap(0, P, pt.PROT_READ, pt.MAP_PRIVATE, f)
    text = mm.maps()
    reader = SeqMaps(mm)
    out = ""
    while True:
        chunk = reader.read(4096)
        if not chunk:
            break
        assert len(chunk) <= 4096
        out += chunk
    assert out == text
