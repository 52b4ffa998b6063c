"""Replay on synthetic logs: who shares the mm, the order of overlapping calls, what is
reported, and the fault assumption (checked against the kernel).

Logs here start from a small listing (--start-maps) so that no program is needed; the
addresses in them are where the simulator's top-down allocator puts things, whose
fidelity to the kernel is tested in tests/address_space and on real programs in
test_real_programs.py.
"""
import json

import pytest

import ptengine as pt
from ptengine import cli
from ptengine.trace import maps, strace
from ptengine.trace.replay import replay

P = pt.PAGE_SIZE
START = """\
7ffff7ffb000-7ffff7fff000 r--p 00000000 00:00 0                          [vvar]
7ffffffde000-7ffffffff000 rw-p 00000000 00:00 0                          [stack]
"""
TOP = 0x7ffff7ffb000          # below [vvar]: where top-down mmaps start


def run(log, **kw):
    calls, _ = strace.parse(log.splitlines(True))
    return replay(calls, start_maps=maps.parse(START), **kw)


def test_threads_and_vm_children_share_the_mm_forked_children_do_not():
    a = TOP - P
    log = f"""\
100 execve("/bin/prog", ["prog"], 0x7fffffffe700 /* 1 var */) = 0
100 clone3({{flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM, child_tid=0x1, parent_tid=0x1, exit_signal=0, stack=0x1, stack_size=0x1, tls=0x1}} <unfinished ...>
101 mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = {a:#x}
100 <... clone3 resumed> => {{parent_tid=[101]}}, 88) = 101
100 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x1) = 102
102 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x1234000
100 vfork() = 103
103 munmap({a:#x}, 4096) = 0
103 execve("/bin/true", ["true"], 0x7fffffffe700 /* 1 var */) = 0
103 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7777000
100 mmap(NULL, 8192, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = {TOP - 2 * P:#x}
"""
    r = run(log)
    # The thread's mmap and the vfork child's munmap (before its exec) are the program's;
    # the forked child and the exec'd vfork child have mms of their own.
    assert r.mismatches == []
    assert (r.calls, r.replayed, r.other_processes) == (3, 3, 2)
    assert r.mm.find_vma(a) is not None and r.mm.find_vma(a).start == TOP - 2 * P
    assert r.mm.map_count == 3


def test_overlapping_mmaps_are_run_in_the_order_that_reproduces_the_log():
    """Thread 101's mmap completed first in the log, but its address only fits if
    thread 100's (begun before it) ran first: replay must find and report that order."""
    log = f"""\
100 execve("/bin/prog", ["prog"], 0x7fffffffe700 /* 1 var */) = 0
100 clone3({{flags=CLONE_VM|CLONE_THREAD|CLONE_SIGHAND}}, 88) = 101
100 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0 <unfinished ...>
101 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = {TOP - 3 * P:#x}
100 <... mmap resumed>) = {TOP - 2 * P:#x}
"""
    r = run(log)
    assert r.mismatches == []
    assert r.reordered == [(5, 4)]          # the call completed on line 5 ran before line 4


def test_mismatches_not_replayed_and_the_command_line(tmp_path):
    log = f"""\
100 execve("/bin/prog", ["prog"], 0x7fffffffe700 /* 1 var */) = 0
100 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x10000
100 munmap(0x7f0000000000, 4096) = -1 EINVAL (Invalid argument)
100 shmat(7, NULL, 0) = 0x7f1000000000
100 munmap(0x7f1000000000, 4096) = 0
100 process_madvise(3<pid:100>, [...], 300, 0x66 /* MADV_??? */, 0) = 1228800
100 mbind(0x7f1000000000, 4096, MPOL_BIND, [0x1], 2, 0) = 0
100 get_mempolicy(NULL, NULL, 0, NULL, 0) = 0
"""
    r = run(log)
    assert [(m.line, m.expected, m.got) for m in r.mismatches] == \
        [(2, "0x10000", hex(TOP - P)), (3, "-1 EINVAL", 0)]
    # SysV shm has no model: counted, and stood in for (the munmap after it works).
    assert r.not_replayed == {"shmat: SysV shared memory": 1,
                              "process_madvise: iovec array abbreviated by strace "
                              "(record with -s >= vlen)": 1,
                              "mbind: memory policy of a range (splits VMAs)": 1}
    assert r.no_vma_effect == 1 and r.calls == 6 and r.replayed == 3
    path = tmp_path / "run.strace"
    path.write_text(log)
    start = tmp_path / "start.maps"
    start.write_text(START)
    out = tmp_path / "r.json"
    status = cli.main(["replay", str(path), "--start-maps", str(start), "--json", str(out),
                       "--check-maps", str(start)])
    assert status == 1
    doc = json.loads(out.read_text())
    assert doc["calls"] == 6 and doc["replayed"] == 3 and doc["not_replayed"] == 3
    assert doc["mismatches"][0] == {"line": 2, "call": "mmap(NULL, 4096, PROT_READ, "
                                    "MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x10000",
                                    "expected": "0x10000", "got": hex(TOP - P)}
    # The start listing against the end: one line more, so every line moved.
    assert doc["maps_checked"] and doc["maps_lines"] == 2
    assert doc["maps_lines_differing"] == 3
    # Peak: the stand-in for the shm segment, until the munmap after it.
    assert doc["final"]["map_count"] == 3 and doc["peak_map_count"] == 4


@pytest.mark.parametrize("written", [True, False])
def test_the_fault_assumption_against_the_kernel(live, written):
    """  A | gap | B   two separate RW mappings; whether each was written decides whether
    filling the gap merges all three (no anon_vmas, or one) or only two (two different
    anon_vmas). The kernel, with the program writing or not, gives the answer replay
    must give under faults="first-write" or "none"."""
    base = 0x100000000000
    log = f"""\
100 execve("/bin/prog", ["prog"], 0x7fffffffe700 /* 1 var */) = 0
100 mmap({base:#x}, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0) = {base:#x}
100 mmap({base + 2 * P:#x}, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0) = {base + 2 * P:#x}
100 mmap({base + P:#x}, 4096, PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0) = {base + P:#x}
100 mprotect({base + P:#x}, 4096, PROT_READ|PROT_WRITE) = 0
"""
    fixed = pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED_NOREPLACE
    rw = pt.PROT_READ | pt.PROT_WRITE
    for addr in (base, base + 2 * P):
        live.mmap(addr, P, rw, fixed)
        if written:
            live.write(addr, b"x")
    live.mmap(base + P, P, pt.PROT_NONE, fixed)
    live.mprotect(base + P, P, rw)
    kernel = len([v for v in live.vmas() if base <= v.start < base + 3 * P])
    r = run(log, faults="first-write" if written else "none")
    assert r.mismatches == []
    assert len(r.mm.vma_tree.overlapping(base, base + 3 * P)) == kernel == (2 if written else 1)
