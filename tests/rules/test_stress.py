"""A seeded random walk over the syscalls and accesses, on the simulator alone: mm.check()
after every step, and an oracle for the guard markers (the set of guarded pages may only
change the way §1 says: INSTALL adds, REMOVE and unmap-type calls take away, mremap moves,
everything else leaves it alone)."""
import random
import time

import numpy as np
import pytest

import ptengine
from ptengine.constants import (MADV_COLD, MADV_COLLAPSE, MADV_DONTFORK, MADV_DONTNEED,
                                MADV_DONTNEED_LOCKED, MADV_FREE, MADV_GUARD_INSTALL,
                                MADV_GUARD_REMOVE, MADV_HUGEPAGE, MADV_NOHUGEPAGE,
                                MADV_PAGEOUT, MADV_POPULATE_READ, MADV_POPULATE_WRITE,
                                MADV_REMOVE, MADV_WILLNEED, MADV_WIPEONFORK, MAP_ANONYMOUS,
                                MAP_FIXED, MAP_PRIVATE, MAP_SHARED, MLOCK_ONFAULT,
                                MREMAP_FIXED, MREMAP_MAYMOVE, PM_GUARD_REGION, PM_PRESENT,
                                PMD_SIZE, PROT_NONE, PROT_READ, PROT_WRITE)
from ptengine.errors import Fault

P = 4096
BASE = 0x300000000000
SPAN = 2 * PMD_SIZE                  # the arena: two PMDs
NPAGES = SPAN // P
PROTS = (PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE)
KINDS = ("anon", "anon", "anon", "shared_anon", "shmem", "file", "file_private")
ADVICE = (MADV_GUARD_INSTALL, MADV_GUARD_INSTALL, MADV_GUARD_REMOVE, MADV_DONTNEED,
          MADV_DONTNEED_LOCKED, MADV_FREE, MADV_COLD, MADV_PAGEOUT, MADV_WILLNEED,
          MADV_POPULATE_READ, MADV_POPULATE_WRITE, MADV_HUGEPAGE, MADV_NOHUGEPAGE,
          MADV_COLLAPSE, MADV_REMOVE, MADV_DONTFORK, MADV_WIPEONFORK)
# Calls that never change which pages hold guard markers.
NEUTRAL = {"read", "write", "touch", "mprotect", "mlock", "munlock", "truncate", "punch",
           "fork", "poison", "madvise"}


def guards(mm):
    pm = mm.pagemap(BASE, SPAN)
    return set(np.flatnonzero(pm & np.uint64(PM_GUARD_REGION)).tolist())


class Walk:
    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.system = ptengine.System()
        self.mm = self.system.spawn()
        self.files = {"file": self.system.create_file("stress", 96 * P),
                      "shmem": self.system.memfd_create("stress", 0)}
        self.files["shmem"].truncate(96 * P)
        self.children = []

    def span(self, max_pages=48):
        r = self.rng
        if max_pages > 8 and r.random() < 0.15:        # a whole PMD: THP territory
            return r.choice((0, NPAGES // 2)), NPAGES // 2
        first = r.randrange(NPAGES)
        n = r.randrange(1, max_pages)
        return first, min(NPAGES - first, n)

    def step(self):
        r, mm = self.rng, self.mm
        op = r.choice(("mmap", "mmap", "munmap", "mprotect", "madvise", "madvise",
                       "madvise", "mremap", "mlock", "munlock", "read", "write", "touch",
                       "poison", "truncate", "punch", "fork", "pmadvise", "thp"))
        first, n = self.span()
        addr, length = BASE + first * P, n * P
        before = guards(mm)
        try:
            if op == "mmap":
                kind = r.choice(KINDS)
                prot = r.choice(PROTS)
                if kind in ("anon", "shared_anon"):
                    flags = MAP_ANONYMOUS | (MAP_PRIVATE if kind == "anon" else MAP_SHARED)
                    mm.mmap(addr, length, prot, flags | MAP_FIXED)
                else:
                    f = self.files["file" if kind.startswith("file") else "shmem"]
                    flags = MAP_PRIVATE if kind.endswith("private") else MAP_SHARED
                    mm.mmap(addr, length, prot, flags | MAP_FIXED, f, r.randrange(48) * P)
                expect = before - set(range(first, first + n))
            elif op == "munmap":
                mm.munmap(addr, length)
                expect = before - set(range(first, first + n))
            elif op == "mprotect":
                mm.mprotect(addr, length, r.choice(PROTS))
            elif op in ("madvise", "pmadvise"):
                advice = r.choice(ADVICE)
                if op == "madvise":
                    self.advise(addr, length, advice, before, first, n)
                else:
                    vec = [(BASE + a * P, k * P) for a, k in (self.span(8) for _ in range(3))]
                    mm.process_madvise(vec, advice)
                    if advice not in (MADV_GUARD_INSTALL, MADV_GUARD_REMOVE):
                        assert guards(mm) == before
                return
            elif op == "mremap":
                self.mremap(addr, length, first, n)
                return
            elif op == "mlock":
                mm.mlock(addr, length, r.choice((0, MLOCK_ONFAULT)))
            elif op == "munlock":
                mm.munlock(addr, length)
            elif op == "read":
                mm.read(addr + r.randrange(P), r.randrange(1, 3 * P))
            elif op == "write":
                mm.write(addr + r.randrange(P), bytes([r.randrange(256)]) * r.randrange(1, 3 * P))
            elif op == "touch":
                mm.touch(addr, length, write=r.random() < 0.5)
            elif op == "poison":
                mm.install_poison(addr, min(length, 4 * P))
            elif op == "truncate":
                self.files[r.choice(("file", "shmem"))].truncate(r.randrange(0, 97) * P)
            elif op == "punch":
                self.files[r.choice(("file", "shmem"))].punch_hole(r.randrange(96) * P,
                                                                   r.randrange(1, 32) * P)
            elif op == "fork":
                self.fork()
            elif op == "thp":           # a fresh THP in one of the two PMDs
                first, n = self.rng.choice((0, NPAGES // 2)), NPAGES // 2
                addr, length = BASE + first * P, n * P
                mm.mmap(addr, length, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
                mm.madvise(addr, length, MADV_HUGEPAGE)
                mm.write(addr + self.rng.randrange(length), b"T")
                assert mm.pt.count(addr, addr + length)["huge_pmd"] == 1
                expect = before - set(range(first, first + n))
            expect = before if op in NEUTRAL else expect
        except Fault as f:
            self.check_fault(f)
            expect = before
        except OSError:
            expect = before if op in NEUTRAL else None
        after = guards(mm)
        if expect is not None:
            assert after == expect, (op, sorted(after ^ expect)[:8])

    def advise(self, addr, length, advice, before, first, n):
        mm = self.mm
        rng = set(range(first, first + n))
        try:
            mm.madvise(addr, length, advice)
            err = 0
        except OSError as e:
            err = e.errno
        after = guards(mm)
        if advice == MADV_GUARD_INSTALL:
            assert before <= after and after - before <= rng
            if not err:
                mapped = {i for i in rng if mm.find_vma(BASE + i * P) is not None}
                assert mapped <= after
        elif advice == MADV_GUARD_REMOVE:
            if not err or err == 12:
                assert after == before - rng
        else:
            assert after == before, (advice, err)

    def mremap(self, addr, length, first, n):
        mm, r = self.mm, self.rng
        vma = mm.find_vma(addr)
        if vma is None:
            return
        first = (vma.start - BASE) // P
        n = min(n, (vma.end - vma.start) // P)
        if first < 0 or first + n > NPAGES:
            return
        old = guards(mm)
        dst_first = r.randrange(NPAGES - n + 1)
        new_n = r.choice((n, max(1, n // 2), n + 4))
        try:
            if new_n == n and dst_first != first and abs(dst_first - first) >= n:
                mm.mremap(BASE + first * P, n * P, n * P, MREMAP_MAYMOVE | MREMAP_FIXED,
                          BASE + dst_first * P)
                src = {i for i in old if first <= i < first + n}
                moved = {i - first + dst_first for i in src}
                expect = (old - src - set(range(dst_first, dst_first + n))) | moved
                assert guards(mm) == expect
            else:
                new = mm.mremap(BASE + first * P, n * P, new_n * P, 0)
                assert new == BASE + first * P
                if new_n < n:
                    assert guards(mm) == old - set(range(first + new_n, first + n))
                else:
                    assert guards(mm) == old
        except OSError:
            assert guards(mm) == old

    def check_fault(self, f):
        """A SEGV_MAPERR inside a VMA is a guard; then the pagemap shows one there."""
        vma = self.mm.find_vma(f.address)
        if f.signal.name == "SIGSEGV" and f.code == 1 and vma is not None \
                and BASE <= f.address < BASE + SPAN:
            e = int(self.mm.pagemap(f.address & ~(P - 1), P)[0])
            assert e & PM_GUARD_REGION and not e & PM_PRESENT

    def fork(self):
        child = self.mm.fork()
        assert guards(child) <= guards(self.mm)
        child.check()
        if self.rng.random() < 0.5:
            child.madvise(BASE, SPAN, MADV_GUARD_REMOVE) if child.find_vma(BASE) else None
            child.exit()
        else:
            self.children.append(child)
            if len(self.children) > 2:
                self.children.pop(0).exit()


@pytest.mark.parametrize("seed", range(24))
def test_random_walk(seed):
    walk = Walk(seed)
    deadline = time.monotonic() + 1.5
    for _ in range(150):
        try:
            walk.step()
        except OSError:
            pass
        walk.mm.check()
        for c in walk.children:
            c.check()
        if time.monotonic() > deadline:
            break
    walk.mm.exit()
