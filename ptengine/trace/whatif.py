"""What guard markers would do to a process, from a snapshot of its address space
(mirrors no kernel file).

`ptengine whatif` reads /proc/PID/maps or smaps (files, or the live processes of this host),
and for every PROT_NONE VMA decides what it is:

  guard        a small PROT_NONE piece next to the mapping it protects: the page below a
               glibc/musl/HotSpot thread stack, bionic's named guards ("thread stack guard",
               "bionic TLS guard", "thread signal stack guard", the PROT_NONE end of a
               "stack_and_tls:TID" mapping and the unnamed guard above it), ART's protected
               page, allocator guard pages. With markers it would be part of that mapping:
               same protection, same name, MADV_GUARD_INSTALL on its pages;
  reservation  address space held PROT_NONE to be opened up later (a glibc arena's 64 MiB
               heap, a JVM or ART heap reserve, wasm memories, Go arenas, anything larger
               than GUARD_MAX, or a PROT_NONE piece in the middle of a mapping opened piece
               by piece). Kept as it is: as markers it would need a PTE table per 2 MiB of
               it (16 MiB of page tables per 8 GiB wasm memory) for no VMA saved;
               `reservations=True` converts them anyway, to show that cost;
  other        what neither explains, each with its reason (a gap between two segments of a
               library, a lone fault page, a guard whose neighbours it could not merge with).

The process is rebuilt in the simulator from the snapshot (trace.maps.build_mm), its
page tables estimated by faulting in what the snapshot says is resident (_populate), and
every guard converted with the calls a program using markers would make (convert():
PR_SET_VMA_ANON_NAME, mprotect, MADV_GUARD_INSTALL), so the merges and the page tables the
markers need are the simulated kernel's, not a formula.

Page tables are estimated for x86-64 with 4-level paging whatever the snapshot's
architecture: a PTE table maps 2 MiB there, as on arm64 with 4 KiB pages and on 32-bit ARM
(whose 4 KiB PTE page also covers 2 MiB), so the PTE-table part carries over; the upper
levels differ (arm64 with 39-bit addresses has no PUD tables, 32-bit ARM no PMD tables).
"""
import dataclasses
import gzip
import os

from ..constants import (MADV_GUARD_INSTALL, PAGE_SIZE, PMD_SIZE, PROT_EXEC, PROT_READ,
                         PROT_WRITE, VM_EXEC, VM_HUGETLB, VM_LOCKED, VM_MAYSHARE, VM_READ,
                         VM_WRITE)
from . import maps

GUARD_MAX = 1 << 20          # musl's largest guard; bionic, glibc and HotSpot use far less
ARENA_SIZE = 64 << 20        # glibc HEAP_MAX_SIZE on 64-bit: an arena heap's reservation
DEFAULT_MAX_MAP_COUNT = 65530
ACCESS = VM_READ | VM_WRITE | VM_EXEC
# Names of the mappings an allocator guards (for the report's wording only).
HEAP_NAMES = ("[heap]", "libc_malloc", "scudo:", "jemalloc", "GWP-ASan", "partition_alloc",
              "bionic_alloc")


@dataclasses.dataclass
class Verdict:
    """What one PROT_NONE VMA was taken for, and why."""
    entry: object                 # the maps record
    kind: str                     # "guard", "reservation" or "other"
    idiom: str                    # a short label, grouped in the report
    reason: str = ""              # for "other": why it was not converted
    target: object = None         # the record it folds into (guards; reservations if any)
    error: str = ""               # set when the conversion call failed

    def as_json(self):
        e = self.entry
        out = {"start": e.start, "end": e.end, "kind": self.kind, "idiom": self.idiom,
               "name": e.name}
        if self.reason:
            out["reason"] = self.reason
        if self.target is not None:
            out["into"] = [self.target.start, self.target.end]
        if self.error:
            out["error"] = self.error
        return out


@dataclasses.dataclass
class Snapshot:
    """One process's listing, with what else is known about it."""
    source: str
    entries: list
    vm_pte_kb: int | None = None          # /proc/PID/status VmPTE, when known
    max_map_count: int = DEFAULT_MAX_MAP_COUNT


# --- reading -------------------------------------------------------------------------------
def _read_text(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="surrogateescape") as f:
        return f.read()


def status_vm_pte(text):
    """VmPTE in kB from /proc/PID/status text (None if absent)."""
    for line in text.splitlines():
        if line.startswith("VmPTE:"):
            return int(line.split()[1])
    return None


def load_file(path, status=None, max_map_count=DEFAULT_MAX_MAP_COUNT):
    """A snapshot from a maps or smaps file (gzip-compressed if it ends in .gz), with the
    process's status file if given (for its real VmPTE)."""
    vm_pte = status_vm_pte(_read_text(status)) if status else None
    return Snapshot(path, maps.parse(_read_text(path)), vm_pte, max_map_count)


def host_max_map_count():
    try:
        with open("/proc/sys/vm/max_map_count") as f:
            return int(f.read())
    except OSError:
        return DEFAULT_MAX_MAP_COUNT


def load_pid(pid, max_map_count=None):
    """A snapshot of a live process of this host: its smaps and status. Raises OSError if
    they cannot be read; returns None for a process without an address space (a kernel
    thread: empty maps)."""
    base = f"/proc/{int(pid)}"
    with open(f"{base}/smaps", encoding="utf-8", errors="surrogateescape") as f:
        text = f.read()
    if not text:
        return None
    with open(f"{base}/status") as f:
        status = f.read()
    comm = next((l.split(None, 1)[1].strip() for l in status.splitlines()
                 if l.startswith("Name:")), "?")
    return Snapshot(f"pid {pid} ({comm})", maps.parse(text), status_vm_pte(status),
                    max_map_count or host_max_map_count())


def load_all(exclude=()):
    """Snapshots of every process of this host that can be read, and how many could not
    be (gone, or not readable by this user). Kernel threads are left out silently."""
    snaps, skipped = [], 0
    limit = host_max_map_count()
    for name in sorted(os.listdir("/proc"), key=lambda n: (len(n), n)):
        if not name.isdigit() or int(name) in exclude:
            continue
        try:
            snap = load_pid(int(name), limit)
        except (OSError, ValueError):
            skipped += 1
            continue
        if snap is not None:
            snaps.append(snap)
    return snaps, skipped


# --- classifying ---------------------------------------------------------------------------
def _label(e):
    """The name a guard may share with its mapping: the anon name, else the path."""
    if e.anon_name is not None:
        return e.anon_name
    return e.file.path if e.file is not None else e.special_name


def _private_anon(e):
    return e.file is None and not e.flags & VM_MAYSHARE and \
        e.special_name in (None, "[heap]", "[stack]")


def _same_file(a, b):
    return a.file is not None and b.file is not None and not (a.flags | b.flags) & VM_MAYSHARE \
        and (a.file.path, a.dev, a.ino) == (b.file.path, b.dev, b.ino)


def _pieces(lo, hi):
    """Whether lo and hi (adjacent, lo below) can be pieces of one mapping: both private
    anonymous, or one private mapping of a file at contiguous offsets (a named ART region
    on ashmem)."""
    if _private_anon(lo) and _private_anon(hi):
        return True
    return _same_file(lo, hi) and lo.offset + lo.size == hi.offset


def _candidate(e):
    return not e.flags & ACCESS and not e.flags & VM_MAYSHARE and e.size <= GUARD_MAX and \
        (e.file is None or e.file.kind == "file") and e.special_name in (None, "[heap]")


def _foldable(chain, n, below):
    """Whether the guards of `chain` can become part of neighbour `n` (below or above)."""
    if n is None or not n.flags & VM_WRITE or n.flags & (VM_LOCKED | VM_HUGETLB):
        return False
    ends = (n, chain[0]) if below else (chain[-1], n)
    return all(_pieces(a, b) for a, b in zip(chain, chain[1:])) and _pieces(*ends)


def _named_side(g, below, above):
    """The side a guard belongs to by its name: its mapping's own name (the PROT_NONE end of
    a "stack_and_tls:TID" mapping) or that name + " guard" (bionic's "bionic TLS guard",
    "thread signal stack guard"). bionic <= 11 names the guard of an unnamed stack
    "thread stack guard": it sits at the stack's low end."""
    name = g.anon_name
    if name is None:
        return None
    for side, n in (("above", above), ("below", below)):
        if n is not None and n.anon_name is not None and name in (n.anon_name,
                                                                  n.anon_name + " guard"):
            return side
    return "above" if name == "thread stack guard" else None


def _sides(chain, below, above):
    """Which neighbour each guard of a run of adjacent guards belongs to. Named guards say
    it; an unnamed one goes with the named guard next to it, is the top guard of the
    mapping below when that is a bionic "stack_and_tls:TID" mapping or when a guard above
    it belongs upward (bionic's PTHREAD_GUARD_SIZE guard under the next thread's), and
    otherwise belongs to the mapping above: a stack's guard is at its low end (glibc, musl,
    HotSpot, bionic, fibers), and so is a block's in allocators that put one guard between
    blocks."""
    named = [_named_side(g, below, above) for g in chain]
    sides = []
    for i, side in enumerate(named):
        if side is None:
            earlier = next((s for s in reversed(named[:i]) if s), None)
            later = next((s for s in named[i + 1:] if s), None)
            bionic_top = below is not None and (below.anon_name or "").startswith(
                "stack_and_tls:")
            if earlier == "above":
                side = "above"
            elif later == "below" or bionic_top or (later == "above" and below is not None):
                side = "below"
            else:
                side = "above" if above is not None else "below"
        sides.append(side)
    return sides


def _idiom(g, target, side):
    name = target.anon_name or target.special_name or ""
    if target.special_name == "[stack]":
        return "guard below the main thread's [stack]"
    if name.startswith("stack_and_tls:") or g.anon_name == "thread stack guard":
        return "bionic thread stack guard"
    if name in ("thread signal stack", "bionic TLS"):
        return f"{name} guard (bionic)"
    if name.startswith("dalvik-") or (target.file and "dalvik-" in target.file.path):
        return "ART guard page"
    if any(h in name for h in HEAP_NAMES):
        return "allocator guard"
    if side == "above":
        return "guard below an anonymous mapping (thread/fiber stack layout)"
    return "guard above an anonymous mapping"


GAP = ("gap in a library", "alignment padding the loader left PROT_NONE between a "
       "library's segments: not next to a stack or heap mapping, and no neighbour it could "
       "merge with")


def _not_a_guard(e, below, above):
    """(kind, idiom, reason) for a PROT_NONE record that is not a guard candidate, or None
    if it may be one."""
    if e.flags & VM_MAYSHARE:
        return "other", "shared mapping", \
            "a shared PROT_NONE mapping: not a guard of private memory"
    if e.file is not None and any(n is not None and n.file is not None and n.flags & ACCESS
                                  and not n.flags & VM_WRITE and n.file.path == e.file.path
                                  for n in (below, above)):
        return ("other",) + GAP
    if below is not None and _private_anon(e) and _private_anon(below) \
            and below.flags & VM_WRITE and below.start % ARENA_SIZE == 0 \
            and e.end - below.start == ARENA_SIZE:
        return "reservation", "glibc malloc arena heap", ""
    if e.size > GUARD_MAX:
        return "reservation", "large PROT_NONE reservation", ""
    if below is not None and above is not None and below.flags & ACCESS \
            and above.flags & ACCESS and _label(e) is not None \
            and _label(below) == _label(e) == _label(above) \
            and _pieces(below, e) and _pieces(e, above):
        return "reservation", "uncommitted piece of a mapping opened piece by piece", ""
    if not _candidate(e):
        return ("other",) + _other_reason(e, below, above)
    return None


def _other_reason(e, below, above):
    if below is None and above is None:
        return "isolated", "no neighbour to fold into (a fault sentinel page)"
    if any(n is not None and n.flags & VM_LOCKED for n in (below, above)):
        return "next to mlocked memory", "MADV_GUARD_INSTALL refuses VM_LOCKED VMAs"
    if below is not None and above is not None and below.file is not None \
            and above.file is not None and below.file.path == above.file.path:
        return GAP
    if all(n is None or n.file is not None or not n.flags & VM_WRITE for n in (below, above)):
        return "between file or read-only mappings", \
            "no writable private neighbour to merge with"
    return "no compatible neighbour", "no writable private neighbour it could be a piece of"


def classify(entries):
    """A Verdict for every PROT_NONE record of `entries` (in address order)."""
    entries = sorted((e for e in entries if e.special_name != maps.GATE),
                     key=lambda e: e.start)
    n = len(entries)

    def below_of(i):
        return entries[i - 1] if i and entries[i - 1].end == entries[i].start else None

    def above_of(j, end):
        return entries[j] if j < n and entries[j].start == end else None

    verdicts = []
    i = 0
    while i < n:
        e = entries[i]
        if e.flags & ACCESS:
            i += 1
            continue
        below, above = below_of(i), above_of(i + 1, e.end)
        single = _not_a_guard(e, below, above)
        if single is not None:
            kind, idiom, reason = single
            target = _reservation_target(e, below, above) if kind == "reservation" else None
            verdicts.append(Verdict(e, kind, idiom, reason, target))
            i += 1
            continue
        chain, j = [e], i + 1          # a run of adjacent guards: [guard][guard]...
        while j < n and entries[j].start == chain[-1].end and not entries[j].flags & ACCESS \
                and _not_a_guard(entries[j], chain[-1], above_of(j + 1, entries[j].end)) is None:
            chain.append(entries[j])
            j += 1
        above = above_of(j, chain[-1].end)
        ok = {"below": _foldable(chain, below, True), "above": _foldable(chain, above, False)}
        for g, side in zip(chain, _sides(chain, below, above)):
            if not ok[side]:
                side = "below" if side == "above" else "above"
            if ok[side]:
                target = below if side == "below" else above
                verdicts.append(Verdict(g, "guard", _idiom(g, target, side), target=target))
            else:
                verdicts.append(Verdict(g, "other", *_other_reason(g, below, above)))
        i = j
    return verdicts


def _reservation_target(e, below, above):
    """The writable mapping a reservation is a piece of (what it would fold into if it
    were converted), or None."""
    for nb, lo, hi in ((below, below, e), (above, e, above)):
        if nb is not None and nb.flags & VM_WRITE and not nb.flags & VM_LOCKED \
                and _pieces(lo, hi):
            return nb
    return None


# --- simulating ----------------------------------------------------------------------------
def _prot(e):
    return ((PROT_READ if e.flags & VM_READ else 0) | (PROT_WRITE if e.flags & VM_WRITE else 0)
            | (PROT_EXEC if e.flags & VM_EXEC else 0))


def _populate(mm, entries, grows_down):
    """Fault in one page in every 2 MiB of what each record has resident, which allocates
    the page tables its resident pages need (a PTE table per 2 MiB, the upper levels as
    they come). smaps gives each VMA's Rss: the pages are taken to be packed at the end a
    mapping grows from (the top of a stack, the start of anything else), which is the
    fewest tables they can need. A plain maps listing has no Rss: one page of every
    accessible mapping is taken to be resident."""
    for e in entries:
        if not e.flags & ACCESS or e.special_name not in (None, "[heap]", "[stack]"):
            continue
        rss = e.fields.get("Rss")
        pages = 1 if rss is None else -(-(rss << 10) // PAGE_SIZE)
        span = min(pages * PAGE_SIZE, e.size)
        if span <= 0:
            continue
        lo, hi = (e.end - span, e.end) if id(e) in grows_down else (e.start, e.start + span)
        read = bool(e.flags & VM_READ)
        addr = lo
        while addr < hi:
            mm.access(addr, write=not read and bool(e.flags & VM_WRITE),
                      exec=not read and not e.flags & VM_WRITE)
            addr = (addr + PMD_SIZE) & ~(PMD_SIZE - 1)


def convert(mm, verdicts, *, reservations=False, names=True):
    """Turn every guard (and with `reservations`, every reservation that is a piece of a
    writable mapping) into guard markers on `mm`, as a program would have them: the range
    gets its mapping's name (PR_SET_VMA_ANON_NAME) and protection (mprotect), which merges
    it as the kernel merges, then MADV_GUARD_INSTALL. Works on any backend (the simulator,
    ptengine.live). A call that fails is recorded on its verdict.

    Every range is made alike before any marker goes in: installing one gives its VMA an
    anon_vma (madvise_guard_install() prepares one), and a guard that had one of its own
    could no longer merge with both its neighbours (mm/vma.c:is_mergeable_anon_vma()), as
    the next guard of a run [guard][guard][stack] must. A program that maps the whole
    mapping RW and installs markers after has one VMA: that is what is predicted."""
    chosen = [v for v in verdicts if v.target is not None and
              (v.kind == "guard" or reservations and v.kind == "reservation")]
    for v in chosen:
        e, t = v.entry, v.target
        try:
            if names and e.anon_name != t.anon_name and e.file is None:
                mm.set_anon_name(e.start, e.size, t.anon_name)
            mm.mprotect(e.start, e.size, _prot(t))
        except OSError as err:
            v.error = f"{os.strerror(err.errno)} ({err.errno})"
    for v in chosen:
        if v.error:
            continue
        try:
            mm.madvise(v.entry.start, v.entry.size, MADV_GUARD_INSTALL)
        except OSError as err:
            v.error = f"{os.strerror(err.errno)} ({err.errno})"


def _pte_bytes(mm):
    return mm.status()["VmPTE"] << 10


def whatif(snap, *, reservations=False):
    """The report for one snapshot (a dict; see the module docstring and API.md)."""
    entries = [e for e in snap.entries if e.special_name != maps.GATE]
    verdicts = classify(entries)
    mm = maps.build_mm(entries, max_map_count=max(snap.max_map_count, len(entries)))
    grows_down = {id(e) for e in entries if e.special_name == "[stack]"}
    grows_down |= {id(v.target) for v in verdicts
                   if v.kind == "guard" and v.target.start == v.entry.end}
    _populate(mm, entries, grows_down)
    vmas_now, pte_sim_now = mm.map_count, _pte_bytes(mm)
    convert(mm, verdicts, reservations=reservations)
    vmas_markers, pte_sim_markers = mm.map_count, _pte_bytes(mm)
    real = snap.vm_pte_kb << 10 if snap.vm_pte_kb is not None else None
    pte_now = real if real is not None else pte_sim_now
    count = {k: sum(v.kind == k for v in verdicts) for k in ("guard", "reservation", "other")}
    failed = [v for v in verdicts if v.error]
    idioms = {}
    for v in verdicts:
        key = f"{v.kind}: {v.idiom}"
        idioms[key] = idioms.get(key, 0) + 1
    return {
        "source": snap.source,
        "address_bits": 32 if all(e.end <= 1 << 32 for e in entries) else 64,
        "vmas_now": vmas_now, "vmas_markers": vmas_markers,
        "pte_bytes_now": pte_now, "pte_bytes_markers": pte_now + pte_sim_markers - pte_sim_now,
        "pte_now_from": "status" if real is not None else "estimate",
        "pte_bytes_now_estimated": pte_sim_now,
        "guards": count["guard"], "reservations": count["reservation"],
        "unclassified": count["other"], "conversion_failures": len(failed),
        "reservations_converted": bool(reservations),
        "max_map_count": snap.max_map_count,
        "headroom_now": snap.max_map_count - vmas_now,
        "headroom_markers": snap.max_map_count - vmas_markers,
        "idioms": idioms,
        "prot_none": [v.as_json() for v in verdicts],
    }


TOTAL_KEYS = ("vmas_now", "vmas_markers", "pte_bytes_now", "pte_bytes_markers",
              "pte_bytes_now_estimated", "guards", "reservations", "unclassified",
              "conversion_failures")


def total(reports):
    out = {k: sum(r[k] for r in reports) for k in TOTAL_KEYS}
    out["processes"] = len(reports)
    return out


# --- reporting -----------------------------------------------------------------------------
def _kib(n):
    return f"{n / 1024:,.0f} KiB" if n < 10 << 20 else f"{n / (1 << 20):,.1f} MiB"


def format_text(reports, *, verbose=False, skipped=0):
    """The human-readable report: a line per process, the total, then what was kept and
    why (every unclassified kind with its reason)."""
    rows = [("process", "VMAs now → markers", "page tables now → markers",
             "headroom now → markers", "guards", "reserv.", "other")]
    for r in reports:
        est = "" if r["pte_now_from"] == "status" else " (est.)"
        rows.append((r["source"] + (" [32-bit]" if r["address_bits"] == 32 else ""),
                     f"{r['vmas_now']:,} → {r['vmas_markers']:,}",
                     f"{_kib(r['pte_bytes_now'])} → {_kib(r['pte_bytes_markers'])}{est}",
                     f"{r['headroom_now']:,} → {r['headroom_markers']:,}",
                     f"{r['guards']:,}", f"{r['reservations']:,}", f"{r['unclassified']:,}"))
    if len(reports) > 1:
        t = total(reports)
        rows.append((f"total ({t['processes']} processes)",
                     f"{t['vmas_now']:,} → {t['vmas_markers']:,}",
                     f"{_kib(t['pte_bytes_now'])} → {_kib(t['pte_bytes_markers'])}", "",
                     f"{t['guards']:,}", f"{t['reservations']:,}", f"{t['unclassified']:,}"))
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if c == 0 else cell.rjust(w)
                       for c, (cell, w) in enumerate(zip(row, widths))).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if skipped:
        lines.append(f"({skipped} processes could not be read and were skipped)")
    kinds = {}
    for r in reports:
        for v in r["prot_none"]:
            if v["kind"] == "guard" and not v.get("error"):
                continue
            key = (v["kind"], v["idiom"], v.get("error") or v.get("reason", ""))
            kinds[key] = kinds.get(key, 0) + 1
    if kinds:
        lines.append("")
        lines.append("PROT_NONE VMAs kept as they are:")
        for (kind, idiom, why), n in sorted(kinds.items(), key=lambda kv: -kv[1]):
            lines.append(f"  {n:6,}  {kind}: {idiom}" + (f" — {why}" if why else ""))
        if not any(r["reservations_converted"] for r in reports) and \
                any(r["reservations"] for r in reports):
            lines.append("  (reservations are kept: as markers they would cost page tables "
                         "over all of their size; --reservations converts them to show it)")
    if any(r["pte_now_from"] == "estimate" for r in reports):
        lines.append("")
        lines.append("(est.): no VmPTE for this snapshot; page tables now are the simulator's "
                     "estimate from the listing (x86-64, 4-level)")
    if verbose:
        for r in reports:
            lines.append("")
            lines.append(f"{r['source']}:")
            for v in r["prot_none"]:
                into = f" → into {v['into'][0]:x}-{v['into'][1]:x}" if "into" in v else ""
                lines.append(f"  {v['start']:x}-{v['end']:x} {v['kind']:11} {v['idiom']}"
                             f"{into} {v['name']}".rstrip()
                             + (f" [{v['reason']}]" if v.get("reason") else "")
                             + (f" [failed: {v['error']}]" if v.get("error") else ""))
    return "\n".join(lines)


def to_json(reports, skipped=0):
    out = {"processes": reports, "total": total(reports)}
    if skipped:
        out["skipped"] = skipped
    return out
