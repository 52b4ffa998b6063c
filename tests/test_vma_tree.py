"""The VMA tree's top-down search with its free-area cache returns what a plain scan of
every hole returns, whatever sequence of mappings and unmappings came before."""
import random

import pytest

import ptengine as pt
from ptengine.constants import (MAP_ANONYMOUS, MAP_FIXED, MAP_GROWSDOWN, MAP_PRIVATE,
                                PAGE_SIZE, PROT_NONE, PROT_READ, PROT_WRITE)
from ptengine.vma import vm_start_gap

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
def test_cached_search_matches_a_plain_scan(seed, block_load, monkeypatch):
    """With small blocks the hole index passes over many blocks per search."""
    from ptengine.vma import VMATree
    monkeypatch.setattr(VMATree, "BLOCK_LOAD", block_load)
    rng = random.Random(seed)
    mm = pt.MM()
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
