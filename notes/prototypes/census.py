"""Throwaway census (notes/engine-shape.md 4.1): run a workload, keep its processes, and
classify every PTE table under their VMAs: all guard, all none, or how many entries differ
from the larger uniform background. Usage: census.py NAME STRATEGY "dict(PARAMS)"."""
import sys, resource, time, collections
import ptengine
from ptengine.workloads import run as wrun
from ptengine.workloads import runner as R
from ptengine import core as _core

PMD = 1 << 21
name, strategy = sys.argv[1], sys.argv[2]
params = eval(sys.argv[3]) if len(sys.argv) > 3 else {}
keep = []
R.close_backend = lambda system, mms: keep.extend(mms)
t0 = time.perf_counter()
r = wrun(name, strategy, params)
wall = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
hist = collections.Counter()
tables = 0
vmpte = 0
for mm in keep:
    inner = getattr(mm, "inner", mm)
    pt = inner.pt
    vmpte += pt.pgtables_bytes
    seen = set()
    for v in inner.vmas():
        a = v.start & ~(PMD - 1)
        while a < v.end:
            if a not in seen:
                seen.add(a)
                pmd = pt.get_pmd(a)
                if pmd and not pmd & _core.PTE_PSE:
                    c = pt.count(a, a + PMD)
                    tables += 1
                    base = max(c["none"], c["guard"])
                    exc = 512 - base
                    kind = ("uniform-guard" if c["guard"] == 512 else "uniform-none" if c["none"] == 512
                            else "le4" if exc <= 4 else "le16" if exc <= 16 else "le64" if exc <= 64 else "full")
                    hist[kind] += 1
            a += PMD
print(f"{name} {strategy} {params}: wall {wall:.2f}s maxrss {rss/1024:.0f} MiB VmPTE {vmpte>>20} MiB "
      f"PTE tables walked {tables} ({tables*4096>>20} MiB)")
for k in ("uniform-guard", "uniform-none", "le4", "le16", "le64", "full"):
    print(f"  {k:14s} {hist[k]:8d}  {100*hist[k]/max(tables,1):5.1f}%")
