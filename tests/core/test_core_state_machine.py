"""A Hypothesis state machine drives two PageTables (a parent and a fork child) with random
walker operations and checks them, after every step, against a plain-Python model:
{address: entry} per tree plus the set of tables at each level.

The addresses come from two windows of a few MiB that straddle a PMD-table boundary
(1 GiB) and a PUD-table boundary (512 GiB), biased towards 2 MiB boundaries, so that the
walks keep crossing from one table to the next."""
from collections import Counter

from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ptengine import core as _core
from .conftest import BASE, PAGE, PGDIR, PMD, PROT_PRIVATE, PUD

P = PAGE
M64 = (1 << 64) - 1
ZERO = 1
ANON, FILE = _core.FRAME_ANON, _core.FRAME_FILE
RW = _core.PTE_RW
WINDOWS = [(BASE + PUD - 3 * PMD, 6 * PMD), (2 * PGDIR - 2 * PMD, 4 * PMD)]
DELTAS = [0, P, 2 * P, PMD - P, PMD, PMD + P, PUD, PGDIR]


@st.composite
def page_ranges(draw):
    base, size = draw(st.sampled_from(WINDOWS))
    npages = size // P

    def point():
        if draw(st.booleans()):
            return draw(st.integers(0, npages))
        edge = draw(st.integers(0, npages // 512)) * 512 + draw(st.integers(-3, 3))
        return min(max(edge, 0), npages)
    a, b = sorted((point(), point()))
    return base + a * P, base + b * P


addresses = page_ranges().map(lambda r: r[0]).filter(
    lambda a: any(b <= a < b + s for b, s in WINDOWS))


class Tree:
    """The model of one PageTables: entries ("p", pfn, rw) | ("m", bits) | ("s", offset)
    and the base addresses of the PUD, PMD and PTE tables."""

    def __init__(self):
        self.entries = {}
        self.pud, self.pmd, self.pte = set(), set(), set()

    def alloc_path(self, addr):
        self.pud.add(addr & ~(PGDIR - 1))
        self.pmd.add(addr & ~(PUD - 1))
        self.pte.add(addr & ~(PMD - 1))

    def within(self, start, end):
        return sorted(a for a in self.entries if start <= a < end)


def spans(addr, end, size):
    """The kernel's p?d_addr_end() iteration over [addr, end)."""
    while True:
        boundary = (addr + size) & ~(size - 1)
        nxt = boundary if (boundary - 1) & M64 < (end - 1) & M64 else end
        yield addr, nxt
        addr = nxt
        if addr == end:
            return


def fits(start, end, size, floor, ceiling):
    start &= ~(size - 1)
    if start < floor:
        return False
    if ceiling:
        ceiling &= ~(size - 1)
        if not ceiling:
            return False
    return not (end - 1) & M64 > (ceiling - 1) & M64


def free_plan(tree, addr, end, floor, ceiling):
    """Which tables free_pgd_range(addr, end, floor, ceiling) frees, written from the
    description in mm/memory.c."""
    none = (set(), set(), set())
    addr &= ~(PMD - 1)
    if addr < floor:
        addr += PMD
    if ceiling:
        ceiling &= ~(PMD - 1)
        if not ceiling:
            return none
    if (end - 1) & M64 > (ceiling - 1) & M64:
        end -= PMD
    if addr > (end - 1) & M64:
        return none
    ptes, pmds, puds = set(), set(), set()
    for ga, gn in spans(addr, end, PGDIR):
        if ga & ~(PGDIR - 1) not in tree.pud:
            continue
        for ua, un in spans(ga, gn, PUD):
            if ua & ~(PUD - 1) not in tree.pmd:
                continue
            for ba, _ in spans(ua, un, PMD):
                if ba & ~(PMD - 1) in tree.pte:
                    ptes.add(ba & ~(PMD - 1))
            if fits(ua, un, PUD, floor, ceiling):
                pmds.add(ua & ~(PUD - 1))
        if fits(ga, gn, PGDIR, floor, ceiling):
            puds.add(ga & ~(PGDIR - 1))
    return ptes, pmds, puds


class CoreMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.frames = _core.Frames()
        self.pt = [_core.PageTables(self.frames), _core.PageTables(self.frames)]
        self.model = [Tree(), Tree()]
        self.file_pool = [self.frames.alloc(FILE) for _ in range(3)]

    # --- helpers -----------------------------------------------------------------------
    def mappings(self, pfn):
        return sum(1 for t in self.model for e in t.entries.values()
                   if e[0] == "p" and e[1] == pfn)

    def kind(self, pfn):
        return FILE if pfn in self.file_pool else ANON

    def model_zap(self, tree, start, end, flags):
        drop = flags & _core.ZAP_DROP_MARKERS
        keep_uffd = flags & _core.ZAP_KEEP_UFFD_WP and not drop
        keep_cows = flags & _core.ZAP_KEEP_COWS
        cleared = 0
        for a in tree.within(start, end):
            e = tree.entries[a]
            if e[0] == "p":
                keep = e[1] != ZERO and keep_cows and self.kind(e[1]) == ANON
            elif e[0] == "s":
                keep = keep_cows
            elif e[1] & _core.PTE_MARKER_UFFD_WP:
                keep = keep_uffd
            elif e[1] & _core.PTE_MARKER_GUARD:
                keep = not drop
            else:
                keep = keep_cows
            if not keep:
                del tree.entries[a]
                cleared += 1
        if flags & _core.ZAP_RECLAIM_PT:
            for b in list(tree.pte):
                if start <= b and b + PMD <= end and not tree.within(b, b + PMD):
                    tree.pte.discard(b)
        return cleared

    # --- rules -------------------------------------------------------------------------
    @rule(r=page_ranges())
    def install_guards(self, r):
        tree, stop = self.model[0], r[1]
        for a in range(r[0], r[1], P):
            tree.alloc_path(a)
            e = tree.entries.get(a)
            if e is None:
                tree.entries[a] = ("m", _core.PTE_MARKER_GUARD)
            elif not (e[0] == "m" and e[1] & _core.PTE_MARKER_GUARD):
                stop = a
                break
        assert self.pt[0].install_guards(*r) == stop

    @rule(r=page_ranges(), child=st.booleans())
    def remove_guards(self, r, child):
        tree, removed = self.model[child], 0
        for a in tree.within(*r):
            e = tree.entries[a]
            if e[0] == "m" and e[1] & _core.PTE_MARKER_GUARD:
                removed += 1
                bits = e[1] & ~_core.PTE_MARKER_GUARD
                if bits:
                    tree.entries[a] = ("m", bits)
                else:
                    del tree.entries[a]
        assert self.pt[child].remove_guards(*r) == removed

    @rule(r=page_ranges(), child=st.booleans(),
          flags=st.sets(st.sampled_from([_core.ZAP_DROP_MARKERS, _core.ZAP_KEEP_UFFD_WP,
                                         _core.ZAP_RECLAIM_PT, _core.ZAP_KEEP_COWS])))
    def zap(self, r, child, flags):
        f = sum(flags)
        cleared = self.model_zap(self.model[child], r[0], r[1], f)
        assert self.pt[child].zap(r[0], r[1], f) == cleared

    @rule(addr=addresses, which=st.integers(0, 3), rw=st.booleans())
    def map_page(self, addr, which, rw):
        tree = self.model[0]
        pfn = self.file_pool[which] if which < 3 else self.frames.alloc(ANON)
        flags = PROT_PRIVATE | (RW if rw else 0)
        if addr in tree.entries:
            try:
                self.pt[0].map_page(addr, pfn, flags)
            except ValueError:
                pass
            else:
                raise AssertionError("map_page over an entry")
        else:
            self.pt[0].map_page(addr, pfn, flags)
            tree.alloc_path(addr)
            tree.entries[addr] = ("p", pfn, rw)
        if which == 3:
            self.frames.put(pfn)

    @rule(addr=addresses, bits=st.integers(1, 7))
    def set_marker(self, addr, bits):
        tree = self.model[0]
        if addr in tree.entries:
            try:
                self.pt[0].set_marker(addr, bits)
            except ValueError:
                return
            raise AssertionError("set_marker over an entry")
        self.pt[0].set_marker(addr, bits)
        tree.alloc_path(addr)
        tree.entries[addr] = ("m", bits)

    @rule(addr=addresses, offset=st.integers(0, 1000))
    def set_swap(self, addr, offset):
        tree = self.model[0]
        if addr not in tree.entries:
            self.pt[0].set_swap(addr, 0, offset)
            tree.alloc_path(addr)
            tree.entries[addr] = ("s", offset)

    @rule(r=page_ranges(), write=st.booleans(), child=st.booleans())
    def fault_anon(self, r, write, child):
        tree, stop, fresh = self.model[child], r[1], []
        for a in range(r[0], r[1], P):
            tree.alloc_path(a)
            e = tree.entries.get(a)
            if e is None or (e[0] == "p" and e[1] == ZERO):
                if write:
                    fresh.append(a)
                else:
                    tree.entries[a] = ("p", ZERO, False)
                continue
            if e[0] != "p":
                stop = a
                break
            if not write or e[2]:
                continue
            if self.kind(e[1]) == ANON and self.mappings(e[1]) == 1:
                tree.entries[a] = ("p", e[1], True)
                continue
            stop = a
            break
        assert self.pt[child].fault_anon(r[0], r[1], write, PROT_PRIVATE) == stop
        for a in fresh:
            kind, pfn, raw = self.pt[child].lookup(a)
            assert kind == _core.ENTRY_PRESENT and self.frames.kind(pfn) == ANON
            assert self.frames.refcount(pfn) == 1 and self.mappings(pfn) == 0
            tree.entries[a] = ("p", pfn, True)

    @rule(r=page_ranges(),
          flags=st.sets(st.sampled_from([_core.COPY_COW, _core.COPY_UFFD_WP,
                                         _core.COPY_SHARED])))
    def copy_range(self, r, flags):
        src, dst = self.model
        f = sum(flags)
        if dst.within(*r):
            try:
                self.pt[0].copy_range(self.pt[1], r[0], r[1], f)
            except ValueError:
                return
            raise AssertionError("copy_range over a busy child range")
        start, end = r
        for kind, size in (("pud", PGDIR), ("pmd", PUD), ("pte", PMD)):
            for b in getattr(src, kind):
                if start < end and b < end and b + size > start:
                    getattr(dst, kind).add(b)
        copied = 0
        for a in src.within(start, end):
            e = src.entries[a]
            if e[0] == "p":
                rw = e[2] and not f & _core.COPY_COW
                src.entries[a] = dst.entries[a] = ("p", e[1], rw)
            elif e[0] == "m":
                bits = e[1] & (_core.PTE_MARKER_GUARD | _core.PTE_MARKER_POISONED)
                if f & _core.COPY_UFFD_WP:
                    bits |= e[1] & _core.PTE_MARKER_UFFD_WP
                if not bits:
                    continue
                dst.entries[a] = ("m", bits)
            else:
                dst.entries[a] = e
            copied += 1
        assert self.pt[0].copy_range(self.pt[1], start, end, f) == copied

    @rule(r=page_ranges(), child=st.booleans(), floor_delta=st.sampled_from(DELTAS + [None]),
          ceiling_delta=st.sampled_from(DELTAS + [None]))
    def unmap(self, r, child, floor_delta, ceiling_delta):
        """munmap: a drop-markers zap, then free_pgtables with some floor and ceiling."""
        start, end = r
        tree, pt = self.model[child], self.pt[child]
        floor = 0 if floor_delta is None else max(0, start - floor_delta)
        ceiling = 0 if ceiling_delta is None else end + ceiling_delta
        self.model_zap(tree, start, end, _core.ZAP_DROP_MARKERS)
        pt.zap(start, end, _core.ZAP_DROP_MARKERS)
        ptes, pmds, puds = free_plan(tree, start, end, floor, ceiling)
        busy = (any(tree.within(b, b + PMD) for b in ptes)
                or any(b not in ptes for b in tree.pte for u in pmds if u <= b < u + PUD)
                or any(u not in pmds for u in tree.pmd for g in puds if g <= u < g + PGDIR))
        if busy:
            try:
                pt.free_pgtables(start, end, floor, ceiling)
            except ValueError:
                return
            raise AssertionError("free_pgtables freed a table with entries")
        pt.free_pgtables(start, end, floor, ceiling)
        tree.pte -= ptes
        tree.pmd -= pmds
        tree.pud -= puds

    @rule(r=page_ranges(), new=addresses)
    def move_range(self, r, new):
        """mremap's move_page_tables(): whole tables move where both sides are aligned and
        the destination has none; otherwise entries move one by one into a table of the
        destination, and the source table stays."""
        (old, old_end), tree, pt = r, self.model[0], self.pt[0]
        length = old_end - old
        if old < new + length and new < old_end or tree.within(new, new + length):
            return
        assert pt.move_range(old, new, length) == length
        while old < old_end:
            extent = min(PUD - old % PUD, old_end - old, PUD - new % PUD)
            if old & ~(PUD - 1) in tree.pmd:
                tree.pud.add(new & ~(PGDIR - 1))
                if extent == PUD and new not in tree.pmd:
                    self.move_tables(tree, old, new, PUD)
                    old, new = old + extent, new + extent
                    continue
                extent = min(PMD - old % PMD, old_end - old, PMD - new % PMD)
                if old & ~(PMD - 1) in tree.pte:
                    tree.pmd.add(new & ~(PUD - 1))
                    if extent == PMD and new not in tree.pte:
                        self.move_tables(tree, old, new, PMD)
                    else:
                        tree.pte.add(new & ~(PMD - 1))
                        self.move_entries(tree, old, new, extent)
            old, new = old + extent, new + extent

    @staticmethod
    def move_entries(tree, old, new, length):
        for a in tree.within(old, old + length):
            tree.entries[a - old + new] = tree.entries.pop(a)

    def move_tables(self, tree, old, new, size):
        """The table of [old, old + size) changes hands (with the PTE tables under it)."""
        levels = (tree.pmd, tree.pte) if size == PUD else (tree.pte,)
        for level in levels:
            for b in [b for b in level if old <= b < old + size]:
                level.discard(b)
                level.add(b - old + new)
        self.move_entries(tree, old, new, size)

    @rule()
    def exit_child(self):
        self.pt[1].zap(0, 1 << 47, _core.ZAP_DROP_MARKERS)
        self.pt[1].free_pgtables(0, 1 << 47, 0, 0)
        self.model[1] = Tree()

    # --- invariants --------------------------------------------------------------------
    @invariant()
    def trees_match_the_model(self):
        for pt, tree in zip(self.pt, self.model):
            got = {a: decode(raw) for a, raw in pt.dump().items()}
            assert got == tree.entries
            assert (pt.nr_pud_tables, pt.nr_pmd_tables, pt.nr_pte_tables) == \
                (len(tree.pud), len(tree.pmd), len(tree.pte))
            present = [e[1] for e in tree.entries.values() if e[0] == "p" and e[1] != ZERO]
            assert pt.rss_anon == sum(1 for p in present if self.kind(p) == ANON)
            assert pt.rss_file == sum(1 for p in present if self.kind(p) == FILE)
            assert pt.swap_ents == sum(1 for e in tree.entries.values() if e[0] == "s")
            for base, size in WINDOWS:
                expect = dict.fromkeys(("present", "zero_page", "swap", "guard", "poison",
                                        "uffd_wp"), 0)
                inside = [e for a, e in tree.entries.items() if base <= a < base + size]
                for e in inside:
                    if e[0] == "p":
                        expect["present"] += 1
                        expect["zero_page"] += e[1] == ZERO
                    elif e[0] == "s":
                        expect["swap"] += 1
                    else:
                        expect["guard"] += bool(e[1] & 4)
                        expect["poison"] += bool(e[1] & 2)
                        expect["uffd_wp"] += bool(e[1] & 1)
                expect.update(none=size // P - len(inside), protnone=0, huge_pmd=0,
                              pte_tables=sum(1 for b in tree.pte
                                             if b < base + size and b + PMD > base))
                assert pt.count(base, base + size) == expect
            # A shared PTE table stands for 512 none entries or 512 exact guard markers.
            raw = pt.dump()
            for b in tree.pte:
                if pt.get_pmd(b) & _core.PMD_SHARED_TABLE:
                    values = {raw.get(a, 0) for a in range(b, b + PMD, P)}
                    assert values in ({0}, {_core.GUARD_PTE}), (hex(b), values)
            assert pt.nr_shared_pte_tables == sum(
                1 for b in tree.pte if pt.get_pmd(b) & _core.PMD_SHARED_TABLE)
            pt.check()

    @invariant()
    def frames_match_the_model(self):
        self.frames.check(self.pt)
        maps = Counter(e[1] for t in self.model for e in t.entries.values()
                       if e[0] == "p" and e[1] != ZERO)
        for pfn in set(maps) | set(self.file_pool):
            extra = 1 if pfn in self.file_pool else 0
            assert self.frames.refcount(pfn) == maps[pfn] + extra
        assert self.frames.nr_used == len(set(maps) | set(self.file_pool))


def decode(raw):
    """A raw PTE as the model writes it."""
    if raw & (_core.PTE_PRESENT | _core.PTE_PROTNONE):
        return ("p", (raw & _core.PTE_PFN_MASK) >> 12, bool(raw & RW))
    offset = (~raw >> 9) & ((1 << 50) - 1)
    return ("m", offset) if raw >> 59 == 31 else ("s", offset)


CoreMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestCoreMachine = CoreMachine.TestCase
