"""ptengine whatif: PROT_NONE VMAs classified, guards converted to markers.

Classification is checked on listings laid out as each runtime lays out its threads and
heaps (spec/workloads.md §1); the conversion is checked against the host kernel: the same
layout made by real calls on ptengine.live and on the simulator, converted in place by
convert() on each, must end with the VMAs whatif predicted from the listing alone.
"""
import json
import os
import pathlib
import subprocess
import sys

import pytest

import ptengine as pt
from ptengine import cli
from ptengine.trace import maps
from ptengine.trace import whatif as W

P = pt.PAGE_SIZE
KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
RW = pt.PROT_READ | pt.PROT_WRITE
ANON = pt.MAP_PRIVATE | pt.MAP_ANONYMOUS
FAR = 0x100000000000          # an empty page-table slot of the live server (see conftest)
DATA = pathlib.Path(__file__).resolve().parents[2] / "data" / "android"


def listing(rows, width=12):
    """maps text from (start, size, perms, name) rows laid end to end where start is None."""
    lines, at = [], None
    for start, size, perms, name in rows:
        at = start if start is not None else at
        ino = "0"
        if name.startswith("/"):
            ino = "1234"
        lines.append(f"{at:0{width}x}-{at + size:0{width}x} {perms} 00000000 "
                     f"{'fe:00' if ino != '0' else '00:00'} {ino} {name}".rstrip())
        at += size
    return "\n".join(lines) + "\n"


def verdicts_of(text):
    return W.classify(maps.parse(text))


def report(text, **kw):
    return W.whatif(W.Snapshot("test", maps.parse(text)), **kw)


def by_start(vs):
    return {v.entry.start: v for v in vs}


# --- classification --------------------------------------------------------------------
def test_glibc_241_threads_arena_and_library_gap():
    """  [g][stack 8M][g][stack 8M][g][stack 8M]   three glibc <= 2.41 threads, top-down
         [arena rw 132K][arena ---p to 64 MiB]     a malloc arena heap
         [libfoo r-xp][---p gap][libfoo r--p]      a library with ld.so's padding"""
    base = 0x7f0000000000
    rows = []
    for _ in range(3):
        rows += [(None if rows else base, P, "---p", ""), (None, 8 * MiB, "rw-p", "")]
    arena = 0x7f1000000000
    rows += [(arena, 0x21000, "rw-p", ""), (None, 64 * MiB - 0x21000, "---p", "")]
    lib = 0x7f2000000000
    rows += [(lib, 3 * P, "r-xp", "/usr/lib/libfoo.so"), (None, 0x1fd000, "---p",
                                                            "/usr/lib/libfoo.so"),
             (None, P, "r--p", "/usr/lib/libfoo.so")]
    text = listing(rows)
    vs = by_start(verdicts_of(text))
    for t in range(3):
        g = vs[base + t * (P + 8 * MiB)]
        assert g.kind == "guard" and g.target.start == g.entry.end   # the stack above it
        assert g.idiom.startswith("guard below an anonymous mapping")
    assert vs[arena + 0x21000].kind == "reservation"
    assert vs[arena + 0x21000].idiom == "glibc malloc arena heap"
    gap = vs[lib + 3 * P]
    assert (gap.kind, gap.idiom) == ("other", "gap in a library") and gap.reason
    r = report(text)
    assert (r["guards"], r["reservations"], r["unclassified"]) == (3, 1, 1)
    # With markers, glibc 2.42's stacks merge into one VMA (six become one).
    assert r["vmas_now"] == len(rows) and r["vmas_markers"] == len(rows) - 5
    assert r["headroom_markers"] - r["headroom_now"] == 5


def test_musl_threads():
    """musl: one mapping per thread, an 8 KiB guard below 128 KiB of stack and TLS."""
    base = 0x7f0000000000
    rows = [(base, 8 * KiB, "---p", ""), (None, 128 * KiB + P, "rw-p", ""),
            (None, 8 * KiB, "---p", ""), (None, 128 * KiB + P, "rw-p", "")]
    vs = verdicts_of(listing(rows))
    assert [v.kind for v in vs] == ["guard", "guard"]
    assert [v.target.start for v in vs] == [base + 8 * KiB, base + 2 * 8 * KiB + 128 * KiB + P]
    assert report(listing(rows))["vmas_markers"] == 1


def test_hotspot_zones_and_heap_reservation():
    """HotSpot: Java threads get no glibc guard, but a 16 KiB red/yellow/reserved zone
    mprotected at the low end of the stack; the Java heap is a reservation committed from
    its start."""
    heap = 0x700000000
    rows = [(heap, 256 * MiB, "rw-p", ""), (None, 768 * MiB, "---p", "")]
    stacks = 0x7f0000000000
    rows += [(stacks, 16 * KiB, "---p", ""), (None, 1 * MiB - 16 * KiB, "rw-p", ""),
             (None, 16 * KiB, "---p", ""), (None, 1 * MiB - 16 * KiB, "rw-p", "")]
    text = listing(rows)
    vs = by_start(verdicts_of(text))
    assert vs[heap + 256 * MiB].kind == "reservation"
    assert vs[heap + 256 * MiB].idiom == "large PROT_NONE reservation"
    assert vs[stacks].kind == vs[stacks + MiB].kind == "guard"
    kept, converted = report(text), report(text, reservations=True)
    assert kept["vmas_markers"] == kept["vmas_now"] - 3
    # Converting the reservation saves one VMA more and costs a PTE table per 2 MiB of it.
    assert converted["vmas_markers"] == kept["vmas_markers"] - 1
    extra = converted["pte_bytes_markers"] - kept["pte_bytes_markers"]
    assert extra >= 768 * MiB // pt.PMD_SIZE * P


def test_bionic_android10_named_guards():
    """bionic <= 11 with ART: [thread stack guard][ART's protected page][stack]
    [bionic TLS guard][bionic TLS][bionic TLS guard][thread signal stack guard]
    [thread signal stack]: every guard folds into the mapping its name says."""
    base = 0x7000000000
    rows = [(base, P, "---p", "[anon:thread stack guard]"), (None, P, "---p", ""),
            (None, 1016 * KiB, "rw-p", ""),
            (None, P, "---p", "[anon:bionic TLS guard]"),
            (None, 12 * KiB, "rw-p", "[anon:bionic TLS]"),
            (None, P, "---p", "[anon:bionic TLS guard]"),
            (None, P, "---p", "[anon:thread signal stack guard]"),
            (None, 32 * KiB, "rw-p", "[anon:thread signal stack]")]
    text = listing(rows, width=10)
    vs = verdicts_of(text)
    assert all(v.kind == "guard" for v in vs) and len(vs) == 5
    into = [v.target.anon_name for v in vs]
    assert into == [None, None, "bionic TLS", "bionic TLS", "thread signal stack"]
    r = report(text)
    assert r["vmas_markers"] == 3            # stack, TLS, signal stack
    sim = maps.build_mm(maps.parse(text))
    W.convert(sim, vs)
    # Each mapping now spans its guards: the stack from the lowest guard up.
    assert [(v.start - base, v.end - base, v.anon_name) for v in sim.vmas()] == [
        (0, 1 * MiB, None), (1 * MiB, 1 * MiB + 5 * P, "bionic TLS"),
        (1 * MiB + 5 * P, 1 * MiB + 5 * P + 36 * KiB, "thread signal stack")]
    assert all(sim.access(v.entry.start) is not None for v in vs)


def test_bionic_stack_and_tls_guards():
    """bionic >= 12: the PROT_NONE low end of "stack_and_tls:TID" carries its name, and the
    unnamed top guard above the mapping belongs to it too."""
    base = 0x7000000000
    rows = []
    for tid in (101, 102):
        rows += [(None if rows else base, P, "---p", f"[anon:stack_and_tls:{tid}]"),
                 (None, 1 * MiB, "rw-p", f"[anon:stack_and_tls:{tid}]"),
                 (None, 2 * P, "---p", "")]
    text = listing(rows, width=10)
    vs = verdicts_of(text)
    assert [v.kind for v in vs] == ["guard"] * 4
    assert [v.target.anon_name for v in vs] == ["stack_and_tls:101"] * 2 + \
        ["stack_and_tls:102"] * 2
    assert all(v.idiom == "bionic thread stack guard" for v in vs)
    assert report(text)["vmas_markers"] == 2        # the names keep the stacks apart


def test_32bit_android_addresses():
    """A 32-bit process prints 8-digit addresses; they fit the x86-64 simulator as they are."""
    rows = [(0xf437d000, P, "---p", ""), (None, 3 * P, "rw-p", "[anon:stack_and_tls:main]"),
            (None, P, "---p", ""), (None, 8 * P, "rw-p", "[anon:bionic_alloc_small_objects]"),
            (0xf44d0000, P, "---p", ""), (None, 4 * P, "rw-p", "[anon:thread signal stack]"),
            (0xff77f000, P, "---p", ""), (None, 0x7ff000, "rw-p", "[stack]")]
    text = listing(rows, width=8)
    assert text.startswith("f437d000-f437e000 ---p")
    vs = verdicts_of(text)
    assert [v.kind for v in vs] == ["guard"] * 4
    assert [v.target.name for v in vs] == ["[anon:stack_and_tls:main]"] * 2 + \
        ["[anon:thread signal stack]", "[stack]"]
    r = report(text)
    assert r["address_bits"] == 32 and r["guards"] == 4
    # The main stack's guard cannot merge with [stack] (VM_GROWSDOWN): 8 VMAs become 5.
    assert (r["vmas_now"], r["vmas_markers"]) == (8, 5)


def test_isolated_and_shared_prot_none_are_explained():
    rows = [(0x7000000000, P, "---p", "[anon:dalvik-Sentinel fault page]"),
            (0x7100000000, P, "---s", "/dev/shm/x")]
    vs = verdicts_of(listing(rows, width=10))
    assert [(v.kind, v.idiom) for v in vs] == [("other", "isolated"),
                                              ("other", "shared mapping")]
    assert all(v.reason for v in vs)


# --- conversion on the host kernel -----------------------------------------------------
@pytest.fixture(params=["kernel", "ptengine"])
def backend(request):
    if request.param == "ptengine":
        # The host kernel has no CONFIG_ANON_VMA_NAME (notes/kernel-probes.md): nor here.
        mm = pt.System(anon_vma_name=False).spawn()
        yield request.param, mm
        return
    from ptengine import live
    if not live.available():
        live.server_binary()          # a build failure is an error, not a skip
        pytest.skip("the host kernel has no guard regions (MADV_GUARD_INSTALL)")
    mm = live.LiveMM()
    yield request.param, mm
    mm.close()


def _old_style(mm):
    """At FAR, with PROT_NONE guards as old runtimes make them (none of it written: see
    test_markers_program_matches_prediction for written stacks):
      three glibc threads: one PROT_NONE mapping, the stacks mprotected RW above each guard
      two HotSpot stacks with their 16 KiB zone, a musl thread with an 8 KiB guard,
      an allocator's large blocks [G][data][G][G][data][G]."""
    at = FAR
    mm.mmap(at, 3 * (P + 64 * P), pt.PROT_NONE, ANON | pt.MAP_FIXED_NOREPLACE)
    for t in range(3):
        mm.mprotect(at + t * 65 * P + P, 64 * P, RW)
    at += 3 * 65 * P + 16 * P
    for _ in range(2):
        mm.mmap(at, 256 * P, RW, ANON | pt.MAP_FIXED_NOREPLACE)
        mm.mprotect(at, 4 * P, pt.PROT_NONE)
        at += 256 * P
    at += 16 * P
    mm.mmap(at, 2 * P + 33 * P, pt.PROT_NONE, ANON | pt.MAP_FIXED_NOREPLACE)
    mm.mprotect(at + 2 * P, 33 * P, RW)
    at += 35 * P + 16 * P
    for _ in range(2):
        mm.mmap(at, 10 * P, pt.PROT_NONE, ANON | pt.MAP_FIXED_NOREPLACE)
        mm.mprotect(at + P, 8 * P, RW)
        at += 10 * P
    return at


def _region(mm, end):
    return [e for e in maps.parse(mm.maps()) if FAR <= e.start < end]


def test_conversion_on_both_backends_matches_prediction(backend):
    name, mm = backend
    end = _old_style(mm)
    before = _region(mm, end)
    predicted = W.whatif(W.Snapshot("t", before))
    # The allocator's two middle guards are one VMA already: the kernel merged them.
    assert predicted["guards"] == 3 + 2 + 1 + 3
    pte0 = mm.status()["VmPTE"]
    verdicts = W.classify(before)
    W.convert(mm, verdicts, names=False)
    assert not any(v.error for v in verdicts)
    after = _region(mm, end)
    assert len(before) == predicted["vmas_now"]
    assert len(after) == predicted["vmas_markers"]
    # Every guard is now a marker page: it faults, and lies inside an accessible VMA.
    for v in verdicts:
        assert mm.access(v.entry.start) is not None
        assert any(e.start <= v.entry.start < e.end and e.perms == "rw-p" for e in after)
    # The markers need PTE tables: the region had none (nothing written).
    assert mm.status()["VmPTE"] > pte0


def test_markers_program_matches_prediction(backend):
    """The prediction is what a program using markers from the start has (glibc 2.42):
    each stack mmapped RW below the last, its guard page MADV_GUARD_INSTALLed, its top
    written. The stacks merge as they are mapped, so written stacks end in one VMA, as the
    listing of their PROT_NONE version predicts."""
    name, mm = backend
    n, size = 4, 64 * P
    old = [(FAR + t * (P + size), P, "---p", "") for t in range(n)]
    rows = []
    for start, _, _, _ in old:
        rows += [(start, P, "---p", ""), (None, size, "rw-p", "")]
    predicted = report(listing(rows))
    top = FAR + n * (P + size)
    for t in range(n):                      # top-down, as the kernel places them
        base = top - (t + 1) * (P + size)
        mm.mmap(base, P + size, RW, ANON | pt.MAP_FIXED_NOREPLACE)
        mm.madvise(base, P, pt.MADV_GUARD_INSTALL)
        mm.write(base + P + size - 8, b"stacktop")
    assert len(_region(mm, top)) == predicted["vmas_markers"] == 1


def test_in_place_conversion_of_written_stacks_differs_from_prediction(backend):
    """What whatif does not predict: converting a running glibc <= 2.41 process in place.
    Each stack, mapped on its own and written, has its own anon_vma, so after its guard
    folds in, it still cannot merge with the next stack (mm/vma.c:is_mergeable_anon_vma());
    the prediction (one VMA, as glibc 2.42 has) is for the program using markers from the
    start (test_markers_program_matches_prediction). Kernel and simulator agree on it."""
    name, mm = backend
    n, size = 3, 64 * P
    top = FAR + n * (P + size)
    for t in range(n):                      # glibc <= 2.41 allocate_stack(), top-down
        base = top - (t + 1) * (P + size)
        mm.mmap(base, P + size, pt.PROT_NONE, ANON | pt.MAP_FIXED_NOREPLACE)
        mm.mprotect(base + P, size, RW)
        mm.write(base + P + size - 8, b"stacktop")
    before = _region(mm, top)
    predicted = W.whatif(W.Snapshot("t", before))
    assert (predicted["vmas_now"], predicted["vmas_markers"]) == (2 * n, 1)
    W.convert(mm, W.classify(before), names=False)
    after = _region(mm, top)
    # n VMAs, not one: each guard joined one neighbour, the stack below it when there is
    # one (the previous VMA is tried first when both cannot join), the lowest its own.
    b = [FAR + i * (P + size) for i in range(n)]
    assert [(e.start, e.end) for e in after] == \
        [(b[0], b[1] + P)] + [(b[i] + P, b[i + 1] + P) for i in range(1, n - 1)] + \
        [(b[n - 1] + P, top)]


# --- live processes --------------------------------------------------------------------
CHILD = """
import threading, sys
ev = threading.Event()
ts = [threading.Thread(target=ev.wait) for _ in range(4)]
for t in ts:
    t.start()
print("ready", flush=True)
sys.stdin.readline()
ev.set()
"""


def _expected_guards(text):
    """Independently of whatif: PROT_NONE anonymous pages right below an anonymous
    rw-p mapping (a glibc thread stack's guard)."""
    es = maps.parse(text)
    return sum(1 for a, b in zip(es, es[1:]) if a.perms == "---p" and a.file is None
               and a.size <= 64 * KiB and b.start == a.end and b.perms == "rw-p"
               and b.file is None)


def test_pid_of_a_threaded_child(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        with open(f"/proc/{child.pid}/maps") as f:
            expected = _expected_guards(f.read())
        out = tmp_path / "w.json"
        assert cli.main(["whatif", "--pid", str(child.pid), "--json", str(out)]) == 0
        # The same process from files: its smaps and, with --status, its real VmPTE.
        for leaf in ("smaps", "status"):
            with open(f"/proc/{child.pid}/{leaf}") as f:
                (tmp_path / leaf).write_text(f.read())
        from_files = tmp_path / "f.json"
        assert cli.main(["whatif", str(tmp_path / "smaps"), "--status",
                         str(tmp_path / "status"), "--json", str(from_files)]) == 0
    finally:
        child.stdin.write("\n")
        child.stdin.close()
        child.wait()
    data = json.loads(out.read_text())
    (proc,) = data["processes"]
    assert proc["source"].startswith(f"pid {child.pid}")
    assert proc["pte_now_from"] == "status"
    stack_guards = [v for v in proc["prot_none"]
                    if v["idiom"].startswith("guard below an anonymous mapping")]
    assert len(stack_guards) == expected
    assert proc["vmas_markers"] <= proc["vmas_now"] - expected
    assert proc["headroom_now"] == proc["max_map_count"] - proc["vmas_now"]
    (files,) = json.loads(from_files.read_text())["processes"]
    assert files["pte_now_from"] == "status"
    assert (files["vmas_now"], files["vmas_markers"], files["guards"]) == \
        (proc["vmas_now"], proc["vmas_markers"], proc["guards"])
    assert files["pte_bytes_markers"] - files["pte_bytes_now"] == \
        proc["pte_bytes_markers"] - proc["pte_bytes_now"]


def test_pid_that_cannot_be_read(capsys):
    assert cli.main(["whatif", "--pid", "999999999"]) == 1
    assert "pid 999999999" in capsys.readouterr().err


def test_all_and_json_schema(tmp_path):
    out = tmp_path / "all.json"
    assert cli.main(["whatif", "--all", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    keys = ("vmas_now", "vmas_markers", "pte_bytes_now", "pte_bytes_markers", "guards",
            "reservations", "unclassified")
    assert data["processes"]
    for proc in data["processes"]:
        assert isinstance(proc["source"], str)
        assert all(isinstance(proc[k], int) for k in keys)
        assert proc["vmas_markers"] <= proc["vmas_now"]
        assert proc["guards"] + proc["reservations"] + proc["unclassified"] == \
            len(proc["prot_none"])
    for k in keys:
        assert data["total"][k] == sum(p[k] for p in data["processes"])
    assert all(not p["source"].startswith(f"pid {os.getpid()} ") for p in data["processes"])


def test_cli_needs_one_source(capsys):
    assert cli.main(["whatif"]) == 2
    assert cli.main(["whatif", "--all", "--pid", "1"]) == 2


# --- the published Android snapshots ---------------------------------------------------
@pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("*.gz")))
def test_android_snapshots(name):
    """Every bionic-named guard of a real Android process is taken for a guard and folds
    into the mapping its name says; the counts come from the listing's own names."""
    snap = W.load_file(str(DATA / name))
    r = W.whatif(snap)
    by_name = {}
    for e in snap.entries:
        by_name[e.name] = by_name.get(e.name, 0) + (e.perms == "---p")
    idioms = r["idioms"]
    assert idioms.get("guard: thread signal stack guard (bionic)", 0) == \
        by_name.get("[anon:thread signal stack guard]", 0)
    assert idioms.get("guard: bionic TLS guard (bionic)", 0) == \
        by_name.get("[anon:bionic TLS guard]", 0)
    assert r["conversion_failures"] == 0
    assert r["vmas_markers"] <= r["vmas_now"] - r["guards"]
    assert r["address_bits"] == 64


def test_readme_android_table_is_what_whatif_says():
    """The README's derived Android figures are whatif's output on data/android."""
    import re
    readme = (DATA.parents[1] / "README.md").read_text()
    rows = re.findall(r"^\| (system_server|app)\b.*?\| ([\d,]+) → ([\d,]+) .*?\| ([\d,]+) → "
                      r"([\d,]+) KiB \| (\d+) / (\d+) / (\d+) \|$", readme, re.M)
    assert len(rows) == 2
    files = {"system_server": "system_server.smaps.gz", "app": "app.maps.gz"}
    for name, *figures in rows:
        r = W.whatif(W.load_file(str(DATA / files[name])))
        got = (r["vmas_now"], r["vmas_markers"], r["pte_bytes_now"] >> 10,
               r["pte_bytes_markers"] >> 10, r["guards"], r["reservations"],
               r["unclassified"])
        assert tuple(int(f.replace(",", "")) for f in figures) == got
