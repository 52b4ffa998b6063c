"""The page-table pool belongs to a System's Frames: a System that is gone gives its tables
(and its pages' contents) back to the host. Measured as the process's VmRSS in a child interpreter (a clean heap,
nothing else of the test run resident), before, at the peak and after `del` and
gc.collect()."""
import subprocess
import sys
import textwrap

import pytest

PROGRAM = textwrap.dedent("""
    import gc
    import ptengine as pt

    def rss():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) << 10

    def guards(gib):
        # A PROT_NONE reservation with guard markers on all pages but one of each 2 MiB,
        # so the tables are all there is, and every PTE table is a private one (a span of
        # guards only would name the shared GUARD table and take no memory).
        system = pt.System()
        mm = system.spawn()
        length, pmd = gib << 30, 2 << 20
        a = mm.mmap(0, length, pt.PROT_NONE,
                    pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_NORESERVE)
        for off in range(-a % pmd, length - pmd + 1, pmd):
            mm.madvise(a + off, pmd - pt.PAGE_SIZE, pt.MADV_GUARD_INSTALL)
        return system, [mm]

    def contents(mib):
        # Pages with contents, and a forked child that copies half of them on write.
        system = pt.System()
        mm = system.spawn()
        length = mib << 20
        a = mm.mmap(0, length, pt.PROT_READ | pt.PROT_WRITE, pt.MAP_PRIVATE | pt.MAP_ANONYMOUS)
        for off in range(0, length, 4096):
            mm.write(a + off, b"parent")
        child = mm.fork()
        for off in range(0, length, 8192):
            child.write(a + off, b"child")
        return system, [mm, child]

    def held(system, procs):
        return (sum(p.pt.host_table_bytes for p in procs)
                + system.frames.nr_data * pt.PAGE_SIZE)

    make = {"guards": guards, "contents": contents}[SCENARIO]
    system, procs = make(1)                 # warm up: imports, first allocations
    del system, procs
    gc.collect()
    before = rss()
    system, procs = make(SIZE)
    simulated = held(system, procs)
    peak = rss()
    del system, procs
    gc.collect()
    print(before, peak, rss(), simulated)
""")


@pytest.mark.parametrize("scenario, size", [("guards", 32),       # GiB: 64 MiB of tables
                                            ("contents", 64)])    # MiB of written pages
def test_a_system_that_is_gone_returns_its_memory(scenario, size):
    out = subprocess.run([sys.executable, "-c",
                          f"SCENARIO, SIZE = {scenario!r}, {size}\n" + PROGRAM],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    before, peak, after, simulated = map(int, out.stdout.split())
    assert simulated >= 32 << 20            # tables or page contents the System held
    assert peak - before >= 0.9 * simulated  # the measurement sees them
    # What stays behind is noise next to what the System held.
    assert after - before < 0.05 * simulated, (before, peak, after, simulated)


def test_each_system_has_its_own_table_pool():
    """What makes two Systems safe in two threads without the GIL (_core.pxd): a table one
    System frees is reused by that System, never handed to another."""
    from ptengine import core as _core
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
