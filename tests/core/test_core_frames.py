"""Frames: allocation, references, contents that cost memory only once written."""
import pytest

from ptengine import core as _core
from ptengine.errors import InvariantError


def test_alloc_put_reuses_pfns(frames):
    a = frames.alloc(_core.FRAME_ANON)
    assert a not in (0, frames.zero_pfn)
    assert (frames.refcount(a), frames.mapcount(a), frames.kind(a)) == (1, 0, _core.FRAME_ANON)
    assert frames.nr_used == 1
    frames.put(a)
    assert frames.nr_used == 0
    with pytest.raises(ValueError):
        frames.refcount(a)           # freed
    b = frames.alloc(_core.FRAME_FILE)
    assert b == a                    # the free list hands it back
    frames.check()


def test_contents_allocated_on_write_only(frames):
    pfns = [frames.alloc(_core.FRAME_ANON) for _ in range(3000)]
    assert frames.nr_data == 0
    assert frames.read(pfns[5]) == bytes(4096)
    frames.write(pfns[5], 100, b"hello")
    assert frames.nr_data == 1
    assert frames.read(pfns[5], 100, 5) == b"hello"
    assert frames.read(pfns[5], 0, 100) == bytes(100)
    frames.copy_data(pfns[5], pfns[6])
    assert frames.read(pfns[6], 100, 5) == b"hello" and frames.nr_data == 2
    frames.zero_data(pfns[5])
    assert frames.nr_data == 1 and frames.read(pfns[5]) == bytes(4096)
    frames.copy_data(frames.zero_pfn, pfns[6])
    assert frames.nr_data == 0
    frames.write(pfns[7], 0, bytearray(b"x" * 4096))
    frames.put(pfns[7])             # freeing the frame frees its contents
    assert frames.nr_data == 0
    for p in pfns[:7] + pfns[8:]:
        frames.put(p)
    assert frames.nr_used == 0
    frames.check()


def test_zero_page_is_fixed_and_untracked(frames):
    z = frames.zero_pfn
    assert frames.kind(z) == _core.FRAME_ZERO
    frames.get(z)
    frames.put(z)
    frames.put(z)
    assert frames.kind(z) == _core.FRAME_ZERO and frames.nr_used == 0
    assert frames.read(z, 0, 16) == bytes(16)
    with pytest.raises(ValueError):
        frames.write(z, 0, b"x")
    with pytest.raises(ValueError):
        frames.set_dirty(z)


def test_dirty_and_lazyfree_flags(frames):
    p = frames.alloc(_core.FRAME_SHMEM)
    assert not frames.is_dirty(p)
    frames.set_dirty(p)
    assert frames.is_dirty(p) and frames.kind(p) == _core.FRAME_SHMEM
    frames.clear_dirty(p)
    assert not frames.is_dirty(p)
    frames.set_lazyfree(p)
    assert frames.is_lazyfree(p)
    frames.clear_lazyfree(p)
    assert not frames.is_lazyfree(p)
    frames.put(p)


def test_alloc_huge_is_aligned_and_contiguous(frames):
    small = [frames.alloc(_core.FRAME_ANON) for _ in range(700)]
    head = frames.alloc_huge(_core.FRAME_ANON)
    assert head % 512 == 0
    assert all(frames.refcount(head + i) == 1 for i in range(512))
    assert frames.nr_used == 700 + 512
    frames.put_huge(head)
    head2 = frames.alloc_huge(_core.FRAME_SHMEM)
    assert head2 == head             # a fully free block is reused
    frames.put_huge(head2)
    for p in small:
        frames.put(p)
    frames.check()


def test_put_refuses_to_free_a_mapped_frame(frames, pt):
    p = frames.alloc(_core.FRAME_ANON)
    pt.map_page(0x10000, p, _core.PTE_PRESENT | _core.PTE_USER)
    frames.put(p)
    assert (frames.refcount(p), frames.mapcount(p)) == (1, 1)
    with pytest.raises(ValueError):
        frames.put(p)
    pt.zap(0x10000, 0x11000)
    with pytest.raises(ValueError):
        frames.kind(p)


def test_check_finds_a_leaked_reference(frames, pt):
    p = frames.alloc(_core.FRAME_ANON)
    pt.map_page(0x10000, p, _core.PTE_PRESENT | _core.PTE_USER)
    frames.check([pt])
    frames.get(p)                    # an extra reference is allowed ...
    frames.check([pt])
    other = _core.PageTables(frames)
    other.map_page(0x10000, p, _core.PTE_PRESENT | _core.PTE_USER)
    with pytest.raises(InvariantError):
        frames.check([pt])           # ... a mapping it is not told about is not
    frames.check([pt, other])
    other.zap(0, 1 << 47)
    frames.put(p)
    frames.put(p)
