"""The page-table pool belongs to a System's Frames: a System that is gone gives its tables
back to the host. Measured as the process's VmRSS in a child interpreter (a clean heap,
nothing else of the test run resident), before, at the peak and after `del` and
gc.collect()."""
import subprocess
import sys
import textwrap

PROGRAM = textwrap.dedent("""
    import gc
    import ptengine as pt

    def rss():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) << 10

    def wasm_like(gib):
        # Linear memories as wasm runtimes reserve them: PROT_NONE, MAP_NORESERVE, every
        # page a guard marker, so the tables are all there is.
        system = pt.System()
        mm = system.spawn()
        length = gib << 30
        a = mm.mmap(0, length, pt.PROT_NONE,
                    pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_NORESERVE)
        mm.madvise(a, length, pt.MADV_GUARD_INSTALL)
        return system, mm

    system, mm = wasm_like(1)               # warm up: imports, first allocations
    del system, mm
    gc.collect()
    before = rss()
    system, mm = wasm_like(GIB)
    tables = mm.pt.pgtables_bytes
    peak = rss()
    del system, mm
    gc.collect()
    print(before, peak, rss(), tables)
""")


def test_a_system_that_is_gone_returns_its_page_tables():
    gib = 32                                # 64 MiB of PTE tables
    out = subprocess.run([sys.executable, "-c", f"GIB = {gib}\n" + PROGRAM],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    before, peak, after, tables = map(int, out.stdout.split())
    assert tables >= (gib << 30) >> 9       # one 4 KiB PTE table per 2 MiB
    assert peak - before >= 0.9 * tables    # the measurement sees the tables
    # What stays behind is noise next to what the tables took.
    assert after - before < 0.05 * tables, (before, peak, after, tables)


def test_each_system_has_its_own_table_pool():
    """What makes two Systems safe in two threads without the GIL (_core.pxd): a table one
    System frees is reused by that System, never handed to another."""
    from ptengine import _core
    from .conftest import BASE, PAGE, PMD
    table_of = lambda pt: pt.get_pmd(BASE) & _core.PTE_PFN_MASK   # the host address
    a, b = _core.PageTables(_core.Frames()), _core.PageTables(_core.Frames())
    a.install_guards(BASE, BASE + PAGE)
    freed = table_of(a)
    a.zap(BASE, BASE + PAGE, _core.ZAP_DROP_MARKERS)
    a.free_pgtables(BASE, BASE + PMD, 0, 0)
    b.install_guards(BASE, BASE + PAGE)
    assert table_of(b) != freed
    a.install_guards(BASE, BASE + PAGE)
    assert table_of(a) == freed             # the pool is LIFO: the inequality above means it
