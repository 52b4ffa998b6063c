"""The VMA tree's top-down search with its free-area cache returns what a plain scan of
every hole returns, whatever sequence of mappings and unmappings came before."""
import random

import pytest

import ptengine as pt
from ptengine.constants import (MAP_ANONYMOUS, MAP_FIXED, MAP_GROWSDOWN, MAP_PRIVATE,
                                PAGE_SIZE, PROT_NONE, PROT_READ, PROT_WRITE)
from ptengine.mm.mm_types import vm_start_gap

P = PAGE_SIZE


def brute_force_highest_gap(mm, length):
    """Every free range under mmap_base, highest first, checked against guard gaps."""
    vmas = list(mm.vma_tree)
    low = max(P, mm.mmap_min_addr)
    high = mm.mmap_base
    while True:
        best = None
        ends = [high] + [v.start for v in vmas if v.start < high]
        for gap_end in sorted(set(ends), reverse=True):
            gap_end = min(gap_end, high)
            below = [v.end for v in vmas if v.end <= gap_end]
            gap_start = max([low] + below)
            if gap_end - gap_start >= length and not any(
                    v.start < gap_end and v.end > gap_start for v in vmas):
                best = (gap_start, gap_end)
                break
        if best is None:
            return None
        upper = [v for v in vmas if v.start >= best[1]]
        upper = min(upper, key=lambda v: v.start) if upper else None
        if upper is not None and vm_start_gap(upper) < best[1]:
            high = vm_start_gap(upper)
            continue
        return best[1] - length


@pytest.mark.parametrize("block_load", [64, 4])
@pytest.mark.parametrize("seed", range(24))
def test_cached_search_matches_a_plain_scan(seed, block_load):
    """With small blocks the hole index passes over many blocks per search."""
    rng = random.Random(seed)
    mm = pt.MM()
    mm.vma_tree.__init__(block_load=block_load)
    live = []
    for _ in range(120):
        action = rng.random()
        if action < 0.55 or not live:
            n = rng.choice((1, 2, 3, 8, 16, 64))
            flags = MAP_PRIVATE | MAP_ANONYMOUS
            if rng.random() < 0.05:
                flags |= MAP_GROWSDOWN
            expected = brute_force_highest_gap(mm, n * P)
            got = mm.mmap(0, n * P, rng.choice((PROT_NONE, PROT_READ | PROT_WRITE)), flags)
            assert got == expected
            live.append((got, n))
        elif action < 0.9:
            addr, n = live.pop(rng.randrange(len(live)))
            k = rng.randrange(n)
            mm.munmap(addr + k * P, rng.randint(1, n - k) * P)
            if k:
                live.append((addr, k))
        else:
            addr, n = rng.choice(live)
            mm.mmap(addr, P, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
        mm.check()


# --- the tree against a plain sorted list ------------------------------------------------

def _model_find(model, addr):
    return next((v for v in model if v.end > addr), None)


@pytest.mark.parametrize("block_load", [2, 3, 64])
@pytest.mark.parametrize("seed", range(12))
def test_tree_matches_a_sorted_list(seed, block_load):
    """Random inserts, removals and boundary moves: every lookup of the tree answers as a
    scan of a sorted list does, and the tree's own invariants hold after each step."""
    from ptengine.mm.mm_types import VMA
    from ptengine.mm.vmatree import VMATree
    rng = random.Random(seed)
    tree, model = VMATree(block_load=block_load), []
    for _ in range(400):
        op = rng.random()
        if op < 0.45 or not model:
            start = rng.randrange(0, 200) * P
            vma = VMA(start, start + rng.randint(1, 4) * P, 0)
            overlaps = any(v.start < vma.end and vma.start < v.end for v in model)
            if overlaps:
                with pytest.raises(ValueError):
                    tree.insert(vma)
            else:
                tree.insert(vma)
                model.append(vma)
                model.sort(key=lambda v: v.start)
        elif op < 0.7:
            i = rng.randrange(len(model))
            vma = model.pop(i)
            cover = rng.choice(("below", "above", None))
            # As a merge does, a neighbour takes the range over (range_stays_mapped).
            if cover == "below" and i:
                tree.remove(vma, range_stays_mapped=True)
                tree.set_end(model[i - 1], vma.end)
            elif cover == "above" and i < len(model):
                tree.remove(vma, range_stays_mapped=True)
                tree.set_start(model[i], vma.start)
            else:
                tree.remove(vma)
            with pytest.raises(ValueError):
                tree.remove(vma)
        elif op < 0.85:
            i = rng.randrange(len(model))
            vma = model[i]
            lo = model[i - 1].end if i else 0
            new = rng.randrange(lo, vma.end, P)
            old_pgoff, old_start = vma.pgoff, vma.start
            tree.set_start(vma, new)
            assert vma.start == new and vma.pgoff == (old_pgoff + (new - old_start) // P) % 2**64
        else:
            i = rng.randrange(len(model))
            vma = model[i]
            hi = model[i + 1].start if i + 1 < len(model) else vma.end + 8 * P
            new = rng.randrange(vma.start + P, hi + P, P)
            tree.set_end(vma, new)
            assert vma.end == new
            if i + 1 < len(model):
                with pytest.raises(ValueError):
                    tree.set_end(vma, hi + P)        # into the next VMA
        tree.check()
        assert list(tree) == model and len(tree) == len(model)
        if _ % 20 == 0:
            _sweep(tree, model)
        addr = rng.randrange(0, 210) * P
        end = addr + rng.randint(1, 10) * P
        assert tree.find(addr) is _model_find(model, addr)
        hit = _model_find(model, addr)
        assert tree.lookup(addr) is (hit if hit is not None and hit.start <= addr else None)
        assert tree.overlapping(addr, end) == [v for v in model
                                               if v.start < end and v.end > addr]
        below = [v for v in model if v.start < addr]
        above = [v for v in model if v.start >= end]
        prev, nxt = tree.prev_next(addr, end)
        assert prev is (below[-1] if below else None) and nxt is (above[0] if above else None)
        if model:
            i = rng.randrange(len(model))
            assert tree.neighbours(model[i]) == (model[i - 1] if i else None,
                                                 model[i + 1] if i + 1 < len(model) else None)
        length = rng.randint(1, 6) * P
        holes = [(a.end, b.start) for a, b in zip([VMA(0, 0, 0)] + model, model + [None])
                 if b is not None]
        holes.append((model[-1].end if model else 0, 1 << 47))
        fits = [max(lo, 16 * P) for lo, hi in holes if hi - max(lo, 16 * P) >= length]
        assert tree.lowest_gap(length, 16 * P, 1 << 47) == (min(fits) if fits else None)
        # Top-down within random bounds (the free-area cache carries over between calls).
        low = rng.randrange(0, 100) * P
        high = rng.randrange(low // P + 1, 230) * P
        tops = [min(hi, high) - length for lo, hi in [(0, model[0].start if model else 1 << 47)]
                + holes if min(hi, high) - max(lo, low) >= length]
        assert tree.highest_gap(length, low, high) == (max(tops) if tops else None), \
            (length, low, high)


def _sweep(tree, model):
    """Lookups up and down the whole range, each starting from the finger the one before
    left (on its VMA, beside it or a block away), against the sorted list."""
    ends = [v.end for v in model]
    addrs = sorted({max(a + d, 0) for a in [0] + [v.start for v in model] + ends
                    for d in (-P, 0, P - 1)})
    for addr in addrs + addrs[::-1]:
        hit = _model_find(model, addr)
        assert tree.find(addr) is hit
        if hit is not None:
            i = model.index(hit)
            assert tree.neighbours(hit) == (model[i - 1] if i else None,
                                            model[i + 1] if i + 1 < len(model) else None)
        below = [v for v in model if v.start < addr]
        above = [v for v in model if v.start >= addr + P]
        assert tree.prev_next(addr, addr + P) == (below[-1] if below else None,
                                                  above[0] if above else None)


def test_tree_refuses_what_would_break_it():
    from ptengine.mm.mm_types import VMA
    from ptengine.mm.vmatree import VMATree
    tree = VMATree()
    a, b = VMA(0x10000, 0x12000, 0), VMA(0x14000, 0x15000, 0)
    tree.insert(a)
    tree.insert(b)
    with pytest.raises(ValueError):
        tree.insert(VMA(0x11000, 0x13000, 0))          # overlaps a
    with pytest.raises(ValueError):
        tree.insert(VMA(0x13000, 0x13000, 0))          # empty
    with pytest.raises(ValueError):
        tree.set_start(b, 0x11000)                     # would reach into a
    with pytest.raises(ValueError):
        tree.set_end(a, 0x14001)                       # would reach into b
    with pytest.raises(ValueError):
        VMA(0x2000, 0x1000, 0)                         # end below start
    with pytest.raises(OverflowError):
        VMA(-1, 0x1000, 0)
    with pytest.raises(TypeError):
        tree.insert("not a VMA")
    with pytest.raises(ValueError):
        VMATree(block_load=1)
    tree.check()
    assert list(tree) == [a, b]
