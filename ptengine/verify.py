"""Differential fuzzing: the simulator against the host kernel (mirrors no kernel file).

Random operations (mmap of anonymous, file and shmem memory, munmap, mprotect, mremap,
madvise including guard install/remove, process_madvise, mlock, mseal, reads, writes,
accesses, truncation and fork) are applied at the same addresses to a simulated process and
to a live one (ptengine.live), inside a window the harness owns. After every step the two
must agree on: the result or errno, the VMAs of the window (bounds, permissions, VmFlags,
file offset), the pagemap bits of every page (present, swap, file, exclusive, guard,
uffd-wp) and the status counters (VmPTE, Rss*, VmLck, VmSize deltas). A `probe` step
accesses and reads every page of the window on both; a `fork` step compares the children.

Beyond the window, ranges are drawn across scales: single pages, PMD- and PUD-aligned
places and lengths, multi-GiB MAP_NORESERVE mappings in the wide area above the window
(compared by their VMAs, counters and the pagemap at each VMA's ends), and lengths that
reach TASK_SIZE or 2**64 (symbolic, resolved against the call's address). The live backend
refuses a range over its server's own mappings (any range reaching TASK_SIZE from here):
such a step is not made on either side. process_madvise draws many iovecs (up to past
UIO_MAXIOV) and huge ones (GiBs, sums past MAX_RW_COUNT and SSIZE_MAX); mremap shrinks,
grows and moves with the same lengths.

A divergence is shrunk (greedy step removal) and printed as a ready-to-paste test. One that
does not come back on replay (a kernel outcome that is not a function of the calls, such as
reclaim racing per-CPU LRU batches) is noted, and the sequence goes on from a fresh pair of
processes rather than from the diverged state.
The same generator runs under Hypothesis (tests/fuzz) and from `ptengine verify`.
"""
import errno as _errno
import hashlib
import random
from dataclasses import dataclass, field

from .constants import (MADV_COLD, MADV_DODUMP, MADV_DOFORK, MADV_DONTDUMP, MADV_DONTFORK,
                        MADV_DONTNEED, MADV_DONTNEED_LOCKED, MADV_FREE, MADV_GUARD_INSTALL,
                        MADV_GUARD_REMOVE, MADV_HUGEPAGE, MADV_KEEPONFORK, MADV_NOHUGEPAGE,
                        MADV_NORMAL, MADV_PAGEOUT, MADV_POPULATE_READ, MADV_POPULATE_WRITE,
                        MADV_RANDOM, MADV_SEQUENTIAL, MADV_WILLNEED,
                        MADV_WIPEONFORK, MAP_ANONYMOUS, MAP_FIXED, MAP_FIXED_NOREPLACE,
                        MAP_LOCKED, MAP_NORESERVE, MAP_POPULATE, MAP_PRIVATE, MAP_SHARED,
                        MFD_ALLOW_SEALING, MLOCK_ONFAULT, MREMAP_DONTUNMAP, MREMAP_FIXED,
                        MREMAP_MAYMOVE, PAGE_SIZE, PM_FILE, PM_GUARD_REGION, PM_MMAP_EXCLUSIVE,
                        PM_PRESENT, PM_SWAP, PM_UFFD_WP, PROT_EXEC, PROT_NONE, PROT_READ,
                        PROT_WRITE, PMD_SIZE, PUD_SIZE, TASK_SIZE, UIO_MAXIOV, VM_MAYSHARE,
                        VM_READ, VM_WRITE, VM_EXEC)
from .errors import Fault
from .fs.files import File
from .live import LiveRangeError, LiveSystem, host_profile
from .proc.text import vmflags_mnemonics
from .system import System

P = PAGE_SIZE
# The window straddles a 512 GiB boundary (two PGD slots) and so every table level;
# nothing of the live server lives there.
WINDOW_BASE = 0x100000000000 - (1 << 20)
WINDOW_PAGES = 512
WINDOW_END = WINDOW_BASE + WINDOW_PAGES * P
# The wide area: the window and 64 GiB above it, for ranges at PMD and PUD scale (nothing
# of the live server lives there either). Its VMAs are compared; its pagemap at their ends.
WIDE_END = WINDOW_BASE + 64 * PUD_SIZE
PMD_PAGES, PUD_PAGES = PMD_SIZE // P, PUD_SIZE // P
U64 = (1 << 64) - 1
# Symbolic lengths, resolved against the call's address by _length(): up to or one page
# past TASK_SIZE, to exactly 2**64, past it, and the largest values of the C type.
EDGE_LENGTHS = ("to_task_size", "past_task_size", "to_2**64", "past_2**64", "u64", "1<<47")
# Addresses at the ends of the address space and of the C type (page numbers as strings).
# (At and above TASK_SIZE only: below it the live server has its stack and libraries.)
EDGE_PAGES = ("task_size", "1<<47", "2**64-1")
# Wide pages are drawn aligned in the address space, not from WINDOW_BASE.
ALIGN_PAGES = (0x100000000000 - WINDOW_BASE) // P
FILE_PAGES = 64
PAGEMAP_BITS = PM_PRESENT | PM_SWAP | PM_FILE | PM_MMAP_EXCLUSIVE | PM_GUARD_REGION | PM_UFFD_WP
# The live server's own stack and buffers move its Rss a little, so resident memory is
# compared per window VMA (smaps Rss and Anonymous) rather than from status.
STATUS_FIELDS = ("VmSize", "VmLck", "VmPTE")

PROTS = (PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE, PROT_READ | PROT_EXEC,
         PROT_READ | PROT_WRITE | PROT_EXEC)
KINDS = ("anon", "anon_shared", "file", "file_shared", "memfd", "memfd_shared")
MMAP_MODES = ("fixed", "fixed", "fixed", "noreplace", "hint", "populate", "locked", "noreserve")
MREMAP_MODES = ("inplace", "maymove", "fixed", "dontunmap")
# Not drawn: MADV_REMOVE, which punches the ext4 file into large folios (see below);
# tests/rules covers it. MADV_PAGEOUT's outcome on the kernel can depend on which pages
# still sit in another CPU's LRU batch: such a divergence does not come back on replay.
ADVICE = (MADV_GUARD_INSTALL, MADV_GUARD_INSTALL, MADV_GUARD_INSTALL, MADV_GUARD_REMOVE,
          MADV_GUARD_REMOVE, MADV_DONTNEED, MADV_DONTNEED, MADV_DONTNEED_LOCKED, MADV_FREE,
          MADV_POPULATE_READ, MADV_POPULATE_WRITE, MADV_WILLNEED, MADV_COLD, MADV_COLD,
          MADV_PAGEOUT, MADV_PAGEOUT, MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL,
          MADV_DONTFORK, MADV_DOFORK, MADV_WIPEONFORK, MADV_KEEPONFORK, MADV_HUGEPAGE,
          MADV_NOHUGEPAGE, MADV_DONTDUMP, MADV_DODUMP)
POPULATING_ADVICE = (MADV_POPULATE_READ, MADV_POPULATE_WRITE, MADV_WILLNEED)
VECTOR_ADVICE = (MADV_GUARD_INSTALL, MADV_GUARD_REMOVE, MADV_DONTNEED, MADV_COLD,
                 MADV_PAGEOUT)
# (operation, weight)
OPERATIONS = (("mmap", 14), ("munmap", 4), ("mprotect", 6), ("mremap", 5), ("madvise", 16),
              ("process_madvise", 4), ("mlock", 2), ("munlock", 2), ("mseal", 1),
              ("read", 5), ("write", 6), ("access", 5), ("truncate", 1), ("punch", 1),
              ("probe", 2), ("fork", 2))


def generate_op(choose):
    """One random operation; `choose(lo, hi)` picks an int in [lo, hi] (random.Random's
    randint, or a Hypothesis draw, which then shrinks towards simpler operations)."""
    def pick(seq):
        return seq[choose(0, len(seq) - 1)]

    def page(reach=2):
        """Mostly a page of the window; else (reach 1) a PMD- or PUD-aligned place in the
        wide area, or (reach 2) an address at the end of the address space or the type."""
        r = choose(0, 12 + reach + (reach > 1)) if reach else 0
        if r < 12:
            return choose(0, WINDOW_PAGES - 1)
        if r == 12:
            return choose(1, (WIDE_END - WINDOW_BASE) // PMD_SIZE - 2) * PMD_PAGES + ALIGN_PAGES
        if r == 13:
            return (choose(1, 62) * PUD_PAGES + ALIGN_PAGES
                    - (PMD_PAGES if choose(0, 1) else 0))
        return pick(EDGE_PAGES)

    def npages(reach=3):
        """Page counts across scales: small ones and a PMD (reach 0: what may be faulted
        in), a few PMDs and a PUD (1), multi-GiB (2), and the symbolic lengths that reach
        TASK_SIZE or 2**64 (3). Multi-GiB ranges are kept from what faults pages in: the
        kernel side would take that much of the host's memory."""
        r = choose(0, 11 + 2 * reach) if reach else 0
        if r < 12:
            return pick((1, 1, 2, 3, 4, 8, 16, 32, 64, 300, PMD_PAGES - 1, PMD_PAGES))
        if r < 14:
            return pick((PMD_PAGES + 1, 2 * PMD_PAGES, 3 * PMD_PAGES, PUD_PAGES,
                         PUD_PAGES + 1))
        if r < 16:
            return pick((4 * PUD_PAGES, 16 * PUD_PAGES))
        return pick(EDGE_LENGTHS)

    total = sum(w for _, w in OPERATIONS)
    r = choose(0, total - 1)
    for name, weight in OPERATIONS:
        if r < weight:
            break
        r -= weight
    if name == "mmap":
        mode = pick(MMAP_MODES)
        return (name, pick(KINDS), page(), npages(0 if mode in ("populate", "locked") else 3),
                pick(PROTS), mode, choose(0, FILE_PAGES // 2))
    if name in ("munmap", "munlock", "mseal"):
        return (name, page(), npages())
    if name == "mprotect":
        return (name, page(), npages(), pick(PROTS))
    if name == "mremap":
        # A grown VM_LOCKED mapping is faulted in: the new size stays below multi-GiB.
        new_n = npages(1) if choose(0, 3) else pick(EDGE_LENGTHS)
        return (name, page(), npages(), new_n, pick(MREMAP_MODES), page())
    if name == "madvise":
        advice = pick(ADVICE)
        return (name, page(), npages(0 if advice in POPULATING_ADVICE else 3), advice)
    if name == "process_madvise":
        advice = pick(VECTOR_ADVICE)
        if choose(0, 3):
            vec = tuple((page(), npages()) for _ in range(choose(1, 4)))
            return (name, vec, advice)
        # Many iovecs: count of them, `n` pages each, `stride` pages apart from `first`.
        count = pick((16, 256, UIO_MAXIOV, UIO_MAXIOV + 1))
        return ("process_madvise_many", count, page(0), choose(1, 4), choose(1, 2), advice)
    if name == "mlock":
        return (name, page(), npages(0), choose(0, 1))
    # Accesses stay below TASK_SIZE: above it the hardware's answer (a #GP for a
    # non-canonical address) is not the fault path modelled here.
    if name == "read":
        return (name, page(1), choose(0, 3))
    if name == "write":
        return (name, page(1), choose(0, 3), choose(1, 255))
    if name == "access":
        return (name, page(1), choose(0, 2))
    # Truncating or punching the ext4 file makes the kernel re-read it into large folios,
    # whose fault-around the simulator does not model (it keeps order-0 page-cache pages):
    # only the memfd is cut.
    if name == "truncate":
        return (name, "memfd", choose(0, FILE_PAGES))
    if name == "punch":
        return (name, "memfd", choose(0, FILE_PAGES - 1), choose(1, 8))
    return (name,)


# --- backends ------------------------------------------------------------------------------

def pattern_page(i):
    return bytes([(i * 7 + 1) & 0xFF]) * P


@dataclass
class Side:
    """One backend: its system, process, files and the status baseline."""
    name: str
    system: object
    mm: object
    files: dict
    baseline: dict = field(default_factory=dict)

    def close(self):
        closer = getattr(self.system, "close", None)
        if closer is not None:
            closer()
        else:
            self.mm.exit()


def _make_side(name, system):
    mm = system.spawn()
    files = {"file": system.create_file("ptengine-fuzz.bin", FILE_PAGES * P),
             "memfd": system.memfd_create("ptengine-fuzz", MFD_ALLOW_SEALING)}
    files["memfd"].truncate(FILE_PAGES * P)
    # Page by page: one large pwrite makes ext4 build large folios, whose fault-around and
    # truncation behaviour the simulator does not model (it keeps order-0 page cache pages).
    for f in files.values():
        for i in range(FILE_PAGES):
            f.pwrite(i * P, pattern_page(i))
    side = Side(name, system, mm, files)
    side.baseline = {k: mm.status()[k] for k in STATUS_FIELDS}
    return side


def make_sides():
    """A simulated and a live process configured alike: the simulator runs under the
    host's own profile."""
    return (_make_side("ptengine", System(profile=host_profile())),
            _make_side("kernel", LiveSystem()))


# --- applying an operation ----------------------------------------------------------------

def _addr(page):
    """A drawn page: a page number from the window's base, or an edge address by name."""
    if isinstance(page, str):
        return {"task_size": TASK_SIZE, "1<<47": 1 << 47, "2**64-1": U64 + 1 - P}[page]
    return WINDOW_BASE + page * P


def _length(addr, n):
    """A drawn length in bytes: n pages, or a symbolic length taken from addr."""
    if isinstance(n, str):
        return {"to_task_size": TASK_SIZE - addr, "past_task_size": TASK_SIZE - addr + P,
                "to_2**64": U64 + 1 - addr, "past_2**64": U64 + 1 - addr + P, "u64": U64,
                "1<<47": 1 << 47}[n] & U64
    return n * P


def _range(page, n):
    addr = _addr(page)
    return addr, _length(addr, n)


def _outcome(fn, *args, **kwargs):
    try:
        value = fn(*args, **kwargs)
    except OSError as e:
        return ("errno", _errno.errorcode.get(e.errno, e.errno))
    except Fault as f:
        return ("fault", f.signal.name, f.code, f.address - WINDOW_BASE)
    return ("ok", 0 if value is None else value)


def _place(side, outcome, length):
    """Express a returned address relative to the window; a mapping the kernel placed
    outside it (hint not honoured, mremap moved it) is unmapped again on this side."""
    if outcome[0] != "ok" or outcome[1] is None:
        return outcome
    addr = outcome[1]
    if WINDOW_BASE <= addr < WIDE_END:
        return ("ok", (addr - WINDOW_BASE) // P)
    side.mm.munmap(addr, length)
    return ("ok", "outside")


REFUSED = ("refused",)


def apply_both(sim, live, op):
    """Carry out op on the live side, then on the simulated one: (sim, live) outcomes.
    A step the live backend refuses (its range covers the live server's own mappings,
    which the simulated process does not have) is made on neither side."""
    try:
        b = apply_op(live, op)
    except LiveRangeError:
        return REFUSED, REFUSED
    return apply_op(sim, op), b


def apply_op(side, op):
    """Carry out op on one side; a comparable outcome."""
    mm, name = side.mm, op[0]
    if name == "mmap":
        _, kind, page, n, prot, mode, fpage = op
        flags = MAP_SHARED if kind.endswith("_shared") else MAP_PRIVATE
        fd = None
        if kind.startswith("anon"):
            flags |= MAP_ANONYMOUS
            fpage = 0
        else:
            fd = side.files["memfd" if kind.startswith("memfd") else "file"]
        flags |= {"fixed": MAP_FIXED, "noreplace": MAP_FIXED_NOREPLACE, "hint": 0,
                  "populate": MAP_FIXED | MAP_POPULATE, "locked": MAP_FIXED | MAP_LOCKED,
                  "noreserve": MAP_FIXED | MAP_NORESERVE}[mode]
        addr, length = _range(page, n)
        if hasattr(mm, "reserved"):
            # The live server's own mappings, which the simulation lacks, would make a
            # hint or MAP_FIXED_NOREPLACE over them land elsewhere (or fail) there only.
            mm._guard(addr, length)
        return _place(side, _outcome(mm.mmap, addr, length, prot, flags, fd, fpage * P),
                      length)
    if name == "munmap":
        return _outcome(mm.munmap, *_range(op[1], op[2]))
    if name == "mprotect":
        return _outcome(mm.mprotect, *_range(op[1], op[2]), op[3])
    if name == "mremap":
        _, page, old_n, new_n, mode, new_page = op
        flags = {"inplace": 0, "maymove": MREMAP_MAYMOVE,
                 "fixed": MREMAP_MAYMOVE | MREMAP_FIXED,
                 "dontunmap": MREMAP_MAYMOVE | MREMAP_DONTUNMAP}[mode]
        if mode == "dontunmap":
            new_n = old_n
        addr, old_len = _range(page, old_n)
        new_len = _length(addr, new_n)
        if hasattr(mm, "reserved"):
            # A growth in place into the live server's own mappings would fail there only.
            mm._guard(addr, new_len)
        target = _addr(new_page) if mode in ("fixed", "dontunmap") else 0
        return _place(side, _outcome(mm.mremap, addr, old_len, new_len, flags, target),
                      new_len)
    if name == "madvise":
        return _outcome(mm.madvise, *_range(op[1], op[2]), op[3])
    if name == "process_madvise":
        return _outcome(mm.process_madvise, [_range(p, n) for p, n in op[1]], op[2])
    if name == "process_madvise_many":
        _, count, first, stride, n, advice = op
        return _outcome(mm.process_madvise,
                        [_range(first + i * stride, n) for i in range(count)], advice)
    if name == "mlock":
        return _outcome(mm.mlock, *_range(op[1], op[2]), MLOCK_ONFAULT if op[3] else 0)
    if name == "munlock":
        return _outcome(mm.munlock, *_range(op[1], op[2]))
    if name == "mseal":
        return _outcome(mm.mseal, *_range(op[1], op[2]))
    if name == "read":
        out = _outcome(mm.read, _addr(op[1]) + op[2] * 1024, 16)
        return out if out[0] != "ok" else ("ok", out[1].hex())
    if name == "write":
        return _outcome(mm.write, _addr(op[1]) + op[2] * 1024, bytes([op[3]]) * 8)
    if name == "access":
        sig = mm.access(_addr(op[1]), write=op[2] == 1, exec=op[2] == 2)
        return ("signal", sig.name if sig else None)
    if name == "truncate":
        return _outcome(side.files[op[1]].truncate, op[2] * P)
    if name == "punch":
        return _outcome(side.files[op[1]].punch_hole, op[2] * P, op[3] * P)
    if name == "probe":
        return ("probe", probe(mm))
    if name == "fork":
        child = mm.fork()
        try:
            return ("fork", window_state(child, None), probe(child))
        finally:
            child.exit()
    raise ValueError(f"unknown operation {name!r}")


def probe(mm):
    """Access every page of the window (a read) and digest what readable pages hold."""
    out = []
    for i in range(WINDOW_PAGES):
        addr = _addr(i)
        sig = mm.access(addr)
        if sig is None:
            out.append(hashlib.blake2b(mm.read(addr, P), digest_size=6).hexdigest())
        else:
            out.append(sig.name)
    return tuple(out)


# --- comparing state ----------------------------------------------------------------------

def _perms(flags):
    return ("r" if flags & VM_READ else "-") + ("w" if flags & VM_WRITE else "-") + \
        ("x" if flags & VM_EXEC else "-") + ("s" if flags & VM_MAYSHARE else "p")


def _file_kind(vma):
    """None, "file", "memfd" or "shmem_anon": the simulator's VMAs know their file's kind,
    a live VMA tells it by the path /proc shows."""
    if vma.file is None:
        return None
    if isinstance(vma.file, File):
        return vma.file.kind
    path = getattr(vma, "name", "") or ""
    if "/memfd:" in path:
        return "memfd"
    return "shmem_anon" if path.startswith("/dev/zero") else "file"


def _resident_kb(mm, vma):
    """(Rss, Anonymous) of one VMA in kB, as smaps shows them."""
    stats = getattr(vma, "stats", None)
    if stats:
        return stats.get("Rss", 0), stats.get("Anonymous", 0)
    s = mm.pt.smaps_stats(vma.start, vma.end)
    return s["rss"] >> 10, s["anonymous"] >> 10


def window_vmas(mm):
    """The VMAs of the wide area (the window and above), as comparable tuples."""
    out = []
    for v in mm.vmas():
        if v.end <= WINDOW_BASE or v.start >= WIDE_END:
            continue
        kind = _file_kind(v)
        out.append(((v.start - WINDOW_BASE) // P, (v.end - WINDOW_BASE) // P, _perms(v.flags),
                    " ".join(vmflags_mnemonics(v.flags)), kind,
                    v.pgoff if kind in ("file", "memfd") else None) + _resident_kb(mm, v))
    return out


def window_state(mm, baseline):
    """Every page of the window in the pagemap; beyond it, the first and last page of each
    VMA (appended after the window's entries, as (page, bits) pairs)."""
    pm = mm.pagemap(WINDOW_BASE, WINDOW_PAGES * P)
    vmas = window_vmas(mm)
    ends = sorted({p for v in vmas for p in (v[0], v[1] - 1) if p >= WINDOW_PAGES})
    state = {"vmas": vmas,
             "pagemap": tuple(int(x) & PAGEMAP_BITS for x in pm)
             + tuple((p, int(mm.pagemap(_addr(p), P)[0]) & PAGEMAP_BITS) for p in ends)}
    if baseline is not None:
        status = mm.status()
        state["status"] = {k: status[k] - baseline[k] for k in STATUS_FIELDS}
    return state


def describe_difference(a, b):
    """Human-readable lines for where two window states differ."""
    lines = []
    if a["vmas"] != b["vmas"]:
        lines.append(f"VMAs (page, end, perms, flags, file, pgoff, Rss, Anonymous):\n"
                     f"  ptengine: {a['vmas']}\n"
                     f"  kernel:   {b['vmas']}")
    if a["pagemap"] != b["pagemap"]:
        bad = [i for i, (x, y) in enumerate(zip(a["pagemap"], b["pagemap"])) if x != y]
        lines.append("pagemap differs at pages " + ", ".join(
            f"{i}: {a['pagemap'][i]!r} vs {b['pagemap'][i]!r}" for i in bad[:8])
            + (" ..." if len(bad) > 8 else "")
            + ("" if len(a["pagemap"]) == len(b["pagemap"]) else " (and in length)"))
    if a.get("status") != b.get("status"):
        lines.append(f"status deltas: ptengine {a.get('status')} kernel {b.get('status')}")
    return lines


class Divergence(AssertionError):
    def __init__(self, ops, step, detail):
        self.ops = list(ops)
        self.step = step
        self.detail = detail
        super().__init__(f"step {step} ({ops[step]!r}): {detail}")

    def as_test(self, name="test_divergence"):
        body = "".join(f"        {op!r},\n" for op in self.ops)
        return (f"def {name}():\n    from ptengine.verify import assert_same_behaviour\n"
                f"    assert_same_behaviour([\n{body}    ])\n")


def run_ops(ops, sides=None):
    """Apply ops to both sides, comparing after every step; raise Divergence."""
    own = sides is None
    sim, live = sides if sides is not None else make_sides()
    try:
        for step, op in enumerate(ops):
            a, b = apply_both(sim, live, op)
            if a != b:
                raise Divergence(ops[:step + 1], step, f"results differ: ptengine {a!r}, "
                                                       f"kernel {b!r}")
            sa, sb = window_state(sim.mm, sim.baseline), window_state(live.mm, live.baseline)
            diff = describe_difference(sa, sb)
            if diff:
                raise Divergence(ops[:step + 1], step, "\n".join(diff))
            sim.mm.check()
    finally:
        if own:
            sim.close()
            live.close()


def assert_same_behaviour(ops):
    """For regression tests: ops must behave identically on both backends."""
    run_ops([tuple(op) for op in ops])


def shrink(ops):
    """Greedy delta debugging: drop single steps while a divergence remains."""
    ops = list(ops)
    changed = True
    while changed:
        changed = False
        for i in range(len(ops) - 1, -1, -1):
            trial = ops[:i] + ops[i + 1:]
            try:
                run_ops(trial)
            except Divergence as d:
                ops = d.ops
                changed = True
                break
    try:
        run_ops(ops)
    except Divergence as d:
        return d
    return None


def reproduces(ops):
    """Whether replaying ops on fresh processes diverges again. A few kernel outcomes are
    not a function of the calls alone (reclaim racing with per-CPU LRU batches, khugepaged
    collapsing a MADV_HUGEPAGE range at its own pace); a divergence that does not come
    back on replay is one of those, not a simulator bug."""
    try:
        run_ops(list(ops))
    except Divergence:
        return True
    return False


@dataclass
class Summary:
    sequences: int = 0
    steps: int = 0
    divergences: list = field(default_factory=list)
    nondeterministic: list = field(default_factory=list)


def run_sequence(k, ops, summary):
    """Run one sequence; returns how many of its steps ran. A divergence that does not
    come back on replay is noted and the rest of the sequence runs on a fresh pair of
    processes; one that does is shrunk, recorded, and ends the sequence."""
    start = 0
    while start < len(ops):
        try:
            run_ops(ops[start:])
            return len(ops)
        except Divergence as d:
            if not reproduces(d.ops):
                summary.nondeterministic.append((k, d))
                start += d.step + 1
                continue
            summary.divergences.append((k, shrink(d.ops) or d))
            return start + d.step + 1
    return len(ops)


def verify(seed=0, sequences=200, steps=30, progress=False, stop_at_first=True):
    """Run `sequences` random sequences of `steps` operations; return a Summary whose
    divergences are shrunk."""
    summary = Summary()
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=sequences, unit="seq", desc="verify")
    try:
        for k in range(sequences):
            rng = random.Random(f"{seed}:{k}")
            ops = [generate_op(rng.randint) for _ in range(steps)]
            done = run_sequence(k, ops, summary)
            summary.sequences += 1
            summary.steps += done
            if bar is not None:
                bar.update(1)
            if done < len(ops) and stop_at_first:
                break
    finally:
        if bar is not None:
            bar.close()
    return summary
