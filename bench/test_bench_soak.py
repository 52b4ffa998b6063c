"""A soak: 10^6 mixed calls keep the simulator's memory flat (issue 11, item 8).

    pytest bench/test_bench_soak.py --benchmark-enable   # 10^6 calls (a few minutes)
    pytest bench/test_bench_soak.py                      # smoke: 3 x 10^5 calls

One System, a parent and up to four forked children make random calls: mmap, munmap,
mprotect, guard install and remove, MADV_DONTNEED, touches (which fault on guards and
PROT_NONE), fork and exit. Half of the children touch memory before their exit(), and a
child whose touch faults is dropped without exit() (the error skips it), as careless code
does: such a child must not stay behind in the System. The soak runs in a child interpreter
(a heap of its own) and reads VmRSS every 10^5 calls. What the simulator legitimately holds
then (its page tables and page contents) is subtracted; the rest must not grow after the
first window (the warm-up) by more than 5% of the RSS at its end.
"""
import json
import subprocess
import sys

import pytest

SOAK = r'''
import gc, json, random, sys, warnings
import ptengine as pt
from ptengine.errors import Fault

P = pt.PAGE_SIZE
RW = pt.PROT_READ | pt.PROT_WRITE
PROTS = (pt.PROT_READ, RW, pt.PROT_NONE)
ANON = pt.MAP_PRIVATE | pt.MAP_ANONYMOUS
MAX_REGIONS, MAX_PAGES, MAX_CHILDREN = 32, 64, 4

def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) << 10

def soak(total, window, seed):
    warnings.simplefilter("ignore", ResourceWarning)   # the dropped children (counted)
    rng = random.Random(seed)
    system = pt.System()
    parent = [system.spawn(), []]                     # [mm, [(addr, pages), ...]]
    children = []
    calls, dropped, marks = 0, 0, []

    def end(child):
        """A child's last steps: a fault in its touch skips its exit()."""
        mm, regions = child
        if rng.random() < 0.5 and regions:
            mm.touch(*piece(regions), write=True)
        mm.exit()

    def piece(regions):
        addr, pages = rng.choice(regions)
        first = rng.randrange(pages)
        return addr + first * P, rng.randint(1, pages - first) * P

    while calls < total:
        proc = parent if not children or rng.random() < 0.5 else rng.choice(children)
        mm, regions = proc
        op = rng.random()
        try:
            if op < 0.18 or not regions:
                pages = rng.randint(1, MAX_PAGES)
                regions.append((mm.mmap(0, pages * P, RW, ANON), pages))
                if len(regions) > MAX_REGIONS:
                    addr, pages = regions.pop(0)
                    calls += 1
                    mm.munmap(addr, pages * P)
            elif op < 0.32:
                mm.mprotect(*piece(regions), rng.choice(PROTS))
            elif op < 0.46:
                mm.madvise(*piece(regions), pt.MADV_GUARD_INSTALL)
            elif op < 0.56:
                mm.madvise(*piece(regions), pt.MADV_GUARD_REMOVE)
            elif op < 0.66:
                mm.madvise(*piece(regions), pt.MADV_DONTNEED)
            elif op < 0.90:
                mm.touch(*piece(regions), write=rng.random() < 0.7)
            elif op < 0.95:
                if len(children) < MAX_CHILDREN:
                    children.append([parent[0].fork(), list(parent[1])])
            elif children:
                calls += 1                    # the touch (or not), then exit()
                end(children.pop(rng.randrange(len(children))))
        except Fault:
            if op >= 0.95:
                dropped += 1
        except OSError:
            pass
        calls += 1
        if calls // window > len(marks):
            marks.append(mark(system, calls))
    return {"marks": marks, "dropped": dropped}

def mark(system, calls):
    """RSS, and what the simulator holds: the tables of the live processes and the pages
    with contents (a function: its list of processes must not outlive the mark)."""
    gc.collect()
    procs = system.processes
    state = sum(p.pt.pgtables_bytes for p in procs) + system.frames.nr_data * P
    return {"calls": calls, "rss": rss(), "state": state, "processes": len(procs),
            "vmas": sum(p.map_count for p in procs)}

total, window, seed = map(int, sys.argv[1:])
print(json.dumps(soak(total, window, seed)))
'''

WINDOW = 100_000


def test_soak_keeps_rss_flat(smoke, record_property):
    total = 3 * WINDOW if smoke else 1_000_000
    out = subprocess.run([sys.executable, "-c", SOAK, str(total), str(WINDOW), "1"],
                         capture_output=True, text=True, timeout=3600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    marks = result["marks"]
    assert len(marks) == total // WINDOW
    assert result["dropped"] > 0             # children were dropped without exit()
    overhead = [m["rss"] - m["state"] for m in marks]
    growth = [o - overhead[0] for o in overhead[1:]]
    per_window = (overhead[-1] - overhead[0]) / (len(marks) - 1)
    print(f"\nsoak: {total} calls, {result['dropped']} children dropped without exit(); "
          f"RSS {[m['rss'] >> 20 for m in marks]} MiB, simulator state "
          f"{[m['state'] >> 20 for m in marks]} MiB, growth after warm-up "
          f"{per_window / (1 << 20):+.2f} MiB per {WINDOW} calls")
    record_property("soak_marks", marks)
    assert max(growth) <= 0.05 * marks[0]["rss"], (growth, marks)
