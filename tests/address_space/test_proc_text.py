"""/proc/PID/maps and smaps text of a region, compared line for line between backends.

Both backends build the same layout at the same addresses; the text of the VMAs in the
region must then be identical, except what cannot be: the device and inode numbers of
files (a temporary ext4 file, a memfd, the shmem object of a shared anonymous mapping)
and a temporary file's directory. Those columns are normalised; everything else -
addresses, permissions, offsets, the name column and its padding, every smaps field and
VmFlags - is compared verbatim.
"""
import re

import pytest

from ptengine.constants import (MADV_DONTFORK, MADV_GUARD_INSTALL, MADV_HUGEPAGE,
                                MADV_WIPEONFORK, MAP_GROWSDOWN, MAP_PRIVATE, MAP_SHARED,
                                PROT_EXEC, PROT_NONE, PROT_READ)

from .conftest import BACKENDS, P, RW, Region, make_system, ok, Env

SHANON = MAP_SHARED | 0x20
LINE = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) ([0-9a-f]{8}) ([0-9a-f]+:[0-9a-f]+) (\d+)"
                  r"( +)?(.*)$")
HEADER = re.compile(r"^[0-9a-f]+-[0-9a-f]+ ")


def build(env):
    """The layout, in pages from the region's base (see the module docstring)."""
    r = Region(env)
    mm, system = env.mm, env.system
    f = system.create_file("maps.bin", 32 * P)
    f.pwrite(0, b"f" * (32 * P))
    m = system.memfd_create("maps")
    m.truncate(16 * P)
    r.map(0, 4), mm.write(r.addr(0), b"a" * (2 * P)), r.touch(2, write=False)
    r.map(4, 2, PROT_READ)
    r.map(6, 2, PROT_NONE)
    r.map(8, 2, RW | PROT_EXEC)
    r.map(10, 4, RW, SHANON), mm.write(r.addr(10), b"s")
    r.map(16, 4, RW, MAP_PRIVATE, f, off=2), r.touch(16, write=False), r.touch(17)
    r.map(20, 4, RW, MAP_SHARED, f, off=8), r.touch(20)
    r.map(24, 4, RW, MAP_SHARED, m), r.touch(24)
    r.map(28, 2, RW, MAP_PRIVATE, m, off=4), r.touch(28, write=False)
    r.map(32, 4, RW, 0x22 | MAP_GROWSDOWN), r.touch(35)
    r.map(36, 4), r.touch(36, 4), r.madvise(37, 1, MADV_GUARD_INSTALL)
    r.map(40, 4), ok(mm.mlock(r.addr(40), 4 * P))
    r.map(44, 4), r.madvise(44, 2, MADV_DONTFORK), r.madvise(45, 2, MADV_WIPEONFORK)
    r.madvise(46, 2, MADV_HUGEPAGE)
    r.map(48, 4), ok(mm.mseal(r.addr(48), 4 * P))
    return r


def region_lines(text, r):
    """The lines of the region's VMAs: for maps one each, for smaps each block."""
    out, keep = [], False
    for line in text.splitlines():
        if HEADER.match(line):
            start = int(line.split("-", 1)[0], 16)
            keep = r.base <= start < r.base + r.span
        if keep:
            out.append(line)
    return out


def normalise(line):
    """A mapped file's device and inode become DEV INODE and a temporary file's directory
    TMP (the padding before the name is checked on its own); other lines are unchanged."""
    m = LINE.match(line)
    if not m or m.group(6) == "0":
        return line
    start_end, perms, off, name = line.split()[0], m.group(3), m.group(4), m.group(8)
    name = re.sub(r"^/.*/(maps\.bin)$", r"TMP/\1", name)
    return f"{start_end} {perms} {off} DEV INODE {name}"


@pytest.fixture(scope="module")
def texts():
    """maps and smaps of the layout on each backend."""
    out = {}
    for backend in BACKENDS:
        system = make_system(backend)
        try:
            env = Env(backend, system, system.spawn())
            r = build(env)
            out[backend] = (r, env.mm.maps(), env.mm.smaps())
        finally:
            if backend == "kernel":
                system.close()
    return out


def test_maps_text(texts):
    (rk, maps_k, _), (rs, maps_s, _) = texts["kernel"], texts["ptengine"]
    kernel = region_lines(maps_k, rk)
    sim = region_lines(maps_s, rs)
    assert len(kernel) == 17
    assert [normalise(x) for x in sim] == [normalise(x) for x in kernel]
    # Lines without a name end in "0 " with no padding; with one, it starts at column 73.
    for lines in (kernel, sim):
        for line in lines:
            name = LINE.match(line).group(8)
            if name:
                assert line.index(name) == max(73, len(line) - len(name))
            else:
                assert line.endswith(" 0 ")


def test_smaps_text(texts):
    (rk, _, smaps_k), (rs, _, smaps_s) = texts["kernel"], texts["ptengine"]
    kernel = [normalise(x) for x in region_lines(smaps_k, rk)]
    sim = [normalise(x) for x in region_lines(smaps_s, rs)]
    diff = [(i, s, k) for i, (s, k) in enumerate(zip(sim, kernel)) if s != k]
    assert len(sim) == len(kernel) and not diff, "\n".join(
        f"{i}: ptengine {s!r}\n    kernel   {k!r}" for i, s, k in diff[:20])


@pytest.mark.host_profile("maybe_guard")
def test_guard_markers_never_in_maps(texts):
    """The guard in [36,40) shows only as `gu` in VmFlags; maps has one plain VMA there."""
    for backend in BACKENDS:
        r, maps, smaps = texts[backend]
        base = r.base + 36 * P
        assert sum(line.startswith(f"{base:x}-") for line in maps.splitlines()) == 1
        block = smaps[smaps.index(f"{base:x}-"):]
        vmflags = block[block.index("VmFlags:"):].splitlines()[0]
        assert vmflags == "VmFlags: rd wr mr mw me gu ac "
