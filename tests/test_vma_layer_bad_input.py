"""The compiled VMA layer and syscall classes refuse bad arguments with exceptions; no call,
however odd, may crash the interpreter. Each probe runs in a child interpreter, so a crash
shows as a dead child rather than a dead test run; afterwards the mm's invariants must
hold (check() passes) and nothing may have been lost as "Exception ignored"."""
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
    ("tree load None", "VMATree().load([None])"),
    ("tree load a stranger", "VMATree().load([object()])"),
    ("tree load out of order",
     "t = VMATree(); t.load([VMA(0x3000, 0x4000, 0), VMA(0x1000, 0x2000, 0)]); t.check()"),
    ("tree load an empty VMA", "t = VMATree(); t.load([VMA(0x1000, 0x1000, 0)]); t.check()"),
    ("tree re-initialised", "mm.vma_tree.__init__(2)"),
    ("tree set_end to empty", "mm.vma_tree.set_end(mm.vmas()[0], mm.vmas()[0].start)"),
    ("VMA state overwritten", "mm.vmas()[0].__setstate__((0, 0, 0, 0, 0, 0, 0))"),
    ("hash a VMA", "{mm.vmas()[0]}"),
    ("vma_tree replaced by None", "mm.vma_tree = None"),
    ("vma_modify None", "vma_modify(mm, None, a, a + P)"),
    ("vma_merge_new_range over a VMA", "vma_merge_new_range(mm, a, a + P, 0, 0, None)"),
    ("complete_munmap_vmas of nothing", "complete_munmap_vmas(mm, [])"),
    ("complete_munmap_vmas of None", "complete_munmap_vmas(mm, [None])"),
    ("free_pgtables of None", "free_pgtables(mm, [None], 0, 0)"),
    ("anon_vma_prepare None", "anon_vma_prepare(mm, None)"),
    ("guard install on None", "madvise_guard_install(mm, None, a, a + P)"),
    ("madvise_vma_behavior None", "madvise_vma_behavior(mm, None, a, a + P, 4)"),
    ("mprotect_fixup None", "mprotect_fixup(mm, None, a, a + P, 0)"),
    ("mmap_region at 2**64", "mmap_region(mm, 2**64 - P, P, 0, 0, None)"),
    ("VMA copy past its end", "mm.vmas()[0].copy(0, 1)"),
    ("set_start past the end", "mm.vma_tree.set_start(mm.vmas()[0], 1 << 60)"),
]


@pytest.mark.parametrize("what, code", PROBES, ids=[p[0] for p in PROBES])
def test_bad_call_raises_and_never_crashes(what, code):
    program = textwrap.dedent(f"""
        import ptengine as pt
        from ptengine.mm.madvise import madvise_guard_install, madvise_vma_behavior
        from ptengine.mm.mm_types import VMA
        from ptengine.mm.mmap import mmap_region
        from ptengine.mm.mprotect import mprotect_fixup
        from ptengine.mm.vma import (anon_vma_prepare, complete_munmap_vmas, free_pgtables,
                                     vma_merge_new_range, vma_modify)
        from ptengine.mm.vmatree import VMATree
        P = pt.PAGE_SIZE
        mm = pt.MM()
        a = mm.mmap(0, 4 * P, pt.PROT_READ | pt.PROT_WRITE, pt.MAP_PRIVATE | pt.MAP_ANONYMOUS)
        before = mm.maps()
        errors = (TypeError, ValueError, AttributeError, OverflowError, OSError, IndexError)
        try:
            {code}
        except errors:
            pass
        mm.check()                  # the refused call left every invariant standing
        # Using the mm afterwards raises or works.
        for after in (mm.maps, lambda: mm.munmap(a, 4 * P),
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
    assert "Exception ignored" not in out.stderr, out.stderr[-2000:]


# --- every entry point, fed strangers ------------------------------------------------------
# The compiled VMA layer's def and cpdef callables are listed by introspecting the built
# modules (their embedded signatures name the parameters). Each is called once per
# parameter and stranger, the other arguments plausible, on a fresh mm holding anonymous,
# file and guarded mappings and a forked child (a VMATree's methods on a tree of copies of
# the mm's VMAs: the tree alone is the structure they keep). The call may raise;
# afterwards the mm's check() and the frames' check over every process must pass (and the
# tree's), and nothing may reach stderr as "Exception ignored" (an exception lost inside
# a C-level function).
SWEEP = r'''
import re, sys
import ptengine as pt
from ptengine.mm import (api, brk, fork, madvise, memory, mlock, mm_struct, mm_types, mmap,
                         mprotect, mremap, mseal, userfaultfd, vma, vmatree)
from ptengine.mm.mm_types import VMA, AnonVma
from ptengine.mm.vmatree import VMATree
MODULES = (mm_types, vmatree, mm_struct, vma, memory, mmap, mremap, brk, mprotect, mlock,
           mseal, madvise, userfaultfd, fork, api)
P = pt.PAGE_SIZE
ERRORS = (TypeError, ValueError, AttributeError, OverflowError, OSError, IndexError, KeyError,
          pt.Fault)      # a user access (read, access) may fault: that is its result
STRANGERS = [None, "x", 1.5, object(), -1, 2**64, 2**200, [None], [object()], (1, 2),
             VMA(0x1000, 0x2000, 0), VMATree(), AnonVma()]

def fresh():
    mm = pt.MM()
    a = mm.mmap(0, 16 * P, pt.PROT_READ | pt.PROT_WRITE, pt.MAP_PRIVATE | pt.MAP_ANONYMOUS)
    mm.touch(a, 8 * P)
    mm.madvise(a + 8 * P, 2 * P, pt.MADV_GUARD_INSTALL)
    f = mm.system.create_file("strangers", 8 * P)
    mm.mmap(0, 8 * P, pt.PROT_READ, pt.MAP_SHARED, f, 0)
    child = mm.fork()
    return mm, child, a

def plausible(name, mm, a, tree):
    v = tree.lookup(a)
    table = {"vma": v, "prev": v, "nxt": v, "neighbour": v, "vmas": [v], "tree": tree,
             "parent": tree, "mm": mm, "old": mm, "new": child, "max_map_count": 100, "block_load": 64, "frames": mm.frames,
             "iovecs": [(a, P)], "name": "n",
             "start": a, "addr": a, "old_address": a, "haddr": a, "end": a + P, "low": 0,
             "high": 1 << 47, "floor": 0, "ceiling": 0, "new_address": 0, "hint": 0}
    if name in table:
        return table[name]
    if name in ("length", "size", "old_size", "new_size", "new_len", "old_len", "delta", "n"):
        return P
    if name in ("file", "fd", "a_file", "b_file", "anon_vma", "anon_name", "a", "b"):
        return None
    return 0

def entry_points():
    for mod in MODULES:
        owners = [mod] + [c for c in vars(mod).values()
                          if isinstance(c, type) and c.__module__ == mod.__name__]
        for owner in owners:
            for attr, fn in sorted(vars(owner).items()):
                if owner is mod and getattr(fn, "__module__", None) != mod.__name__:
                    continue                    # imported from elsewhere
                # __init__'s signature is the class's: called again on a live object.
                doc = ((owner if attr == "__init__" else fn).__doc__ or "").split("\n")[0]
                m = re.match(r"(?:\w+\.)?(\w+)\((.*)\)", doc)
                if m is None or (attr.startswith("__") and attr not in
                                 ("__init__", "__setstate_cython__")) or attr.startswith("__pyx"):
                    continue
                params = [p.split("=")[0].split()[-1] for p in m.group(2).split(",") if p.strip()]
                yield owner, attr, (["self"] if attr == "__init__" else []) + params

problems, calls = [], 0
for owner, attr, params in entry_points():
    is_method = params[:1] == ["self"]
    params = params[1:] if is_method else params
    for i in range(len(params)):
        for stranger in STRANGERS:
            mm, child, a = fresh()
            tree = mm.vma_tree
            if owner is VMATree:
                tree = VMATree()
                tree.load([v.copy() for v in mm.vma_tree])
            target = {VMA: tree.lookup(a), VMATree: tree, AnonVma: AnonVma()}.get(owner, mm)
            args = [plausible(p, mm, a, tree) for p in params]
            args[i] = stranger
            fn = getattr(target if is_method else owner, attr, None)
            if fn is None:                  # a module-level copy of a method's wrapper
                break
            what = f"{getattr(owner, '__name__', owner)}.{attr}({params[i]}={stranger!r:.30})"
            calls += 1
            try:
                fn(*args)
            except ERRORS:
                pass
            except Exception as e:
                problems.append(f"{what}: {type(e).__name__}: {e}")
            try:
                for m_ in (mm, child):
                    m_.check()
                mm.frames.check([m_.pt for m_ in mm.system.processes])
                tree.check()
            except AssertionError as e:
                problems.append(f"{what}: left {type(e).__name__}: {e}")
print(calls, "calls")
print("\n".join(problems))
'''


def test_every_entry_point_refuses_strangers_and_keeps_invariants():
    out = subprocess.run([sys.executable, "-c", SWEEP], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    calls = int(out.stdout.split()[0])
    assert calls > 1000                      # the sweep found the entry points
    problems = out.stdout.split("\n", 1)[1].strip()
    assert not problems, problems[:5000]
    assert "Exception ignored" not in out.stderr, out.stderr[-3000:]


def test_vmas_are_equal_by_value_and_unhashable():
    """Equal VMAs are equal records (users compare maps before and after); a VMA is mutable,
    so it has no hash that could disagree with ==. The tree keys VMAs by identity."""
    import pickle

    from ptengine.mm.mm_types import VMA
    from ptengine.mm.vmatree import VMATree
    a, b = VMA(0x1000, 0x3000, 3, 7), VMA(0x1000, 0x3000, 3, 7)
    assert a == b and a is not b
    assert a != VMA(0x1000, 0x3000, 3, 8)
    with pytest.raises(TypeError):
        hash(a)
    tree = VMATree()
    tree.insert(a)
    with pytest.raises(ValueError):
        tree.remove(b)                       # equal, but not the tree's own
    tree.remove(a)
    copy = pickle.loads(pickle.dumps(VMA(0x1000, 0x3000, 3, 7)))
    assert copy == a
    with pytest.raises(TypeError):
        a.__init__(0x5000, 0x6000, 0)        # a VMA keeps its bounds (the tree keys them)
    assert (a.start, a.end) == (0x1000, 0x3000)
