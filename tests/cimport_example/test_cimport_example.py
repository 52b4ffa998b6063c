"""Build tests/cimport_example/guard_walk.pyx against the installed ptengine (its shipped
core/*.pxd and mm/*.pxd), then import and run it: the .pxd files really are
a usable C-level contract. It is built twice: as written (ptengine.core.*), and with those
cimports read from the forwarding ptengine/_core.pxd that older extensions use."""
import importlib
import os
import re
import shutil
import sys

import pytest

import ptengine
from ptengine import core as _core

cython_build = pytest.importorskip("Cython.Build")
pytest.importorskip("setuptools")

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module", params=["core", "_core"])
def guard_walk(request, tmp_path_factory):
    from setuptools import Distribution, Extension
    from setuptools.command.build_ext import build_ext

    tmp = tmp_path_factory.mktemp("cimport_example")
    src = tmp / "guard_walk.pyx"
    shutil.copy(os.path.join(HERE, "guard_walk.pyx"), src)
    if request.param == "_core":
        text = src.read_text()
        src.write_text(re.sub(r"from ptengine\.core\.\w+ cimport", "from ptengine._core cimport",
                              text))
        assert not re.search(r"ptengine\.core\.\w+ cimport", src.read_text())
    # The directory holding the ptengine package: where `cimport ptengine.core.entry` (and
    # the forwarding `cimport ptengine._core`) resolves.
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(ptengine.__file__)))
    assert os.path.exists(os.path.join(package_root, "ptengine", "core", "entry.pxd"))
    assert os.path.exists(os.path.join(package_root, "ptengine", "_core.pxd"))
    extensions = cython_build.cythonize(
        [Extension("guard_walk", [str(src)])], include_path=[package_root],
        build_dir=str(tmp / "c"), quiet=True, compiler_directives={"language_level": 3})
    dist = Distribution({"ext_modules": extensions})
    cmd = build_ext(dist)
    cmd.build_lib = str(tmp)
    cmd.build_temp = str(tmp / "build")
    cmd.ensure_finalized()
    cmd.run()
    sys.path.insert(0, str(tmp))
    try:
        yield importlib.import_module("guard_walk")
    finally:
        sys.path.remove(str(tmp))
        sys.modules.pop("guard_walk", None)


def test_extension_walks_ptengine_tables(guard_walk):
    frames = _core.Frames()
    pt = _core.PageTables(frames)
    base = 0x7F0000000000
    pt.install_guards(base + 0x1FF000, base + 0x203000)     # across a PTE-table boundary
    pt.set_marker(base + 0x203000, _core.PTE_MARKER_POISONED)
    assert guard_walk.count_guards(pt, base, base + (1 << 30)) == 4
    assert guard_walk.count_guards(pt, base + 0x200000, base + 0x201000) == 1
    assert guard_walk.count_guards(pt, 0, 1 << 47) == pt.count(0, 1 << 47)["guard"]
    assert guard_walk.guard_marker() == _core.GUARD_PTE == 0xFFFFFFFFFFFFF600
    with pytest.raises(ValueError):
        guard_walk.count_guards(pt, base + 1, base)
    with pytest.raises(TypeError):
        guard_walk.count_guards(None, 0, 0)


def test_two_systems_walk_concurrently_without_the_gil(guard_walk):
    """core/entry.pxd: walkers over different Frames share nothing (each Frames has its own
    table pool) and may run at once in two threads without the GIL. Each thread installs a
    guard, zaps it and frees its tables again and again on its own System; afterwards both
    are intact and hold no tables. (A race is not certain to show in one run; that the
    pools are apart is shown exactly by test_core_table_pool.)"""
    import threading
    # One page per round: three tables taken from the pool and given back each time.
    rounds, base, span = 100000, 0x7F0000000000, 4096
    systems = [(_core.Frames(),) for _ in range(2)]
    tables = [_core.PageTables(f) for (f,) in systems]
    results = [None, None]
    start = threading.Barrier(2)

    def run(i):
        start.wait()
        results[i] = guard_walk.churn(tables[i], base, base + span, rounds)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (frames,), pt, zapped in zip(systems, tables, results):
        # pt_zap counts what it cleared: every guard of every round.
        assert zapped == rounds * (span >> 12)
        pt.check()
        frames.check([pt])
        assert pt.pgtables_bytes == 0
        assert pt.count(0, 1 << 47)["none"] == 1 << 35


def test_extension_reads_the_vma_layer(guard_walk):
    """The extension walks an MM's VMA tree through mm/mm_struct.pxd and mm/vmatree.pxd."""
    from ptengine.constants import (MADV_GUARD_INSTALL, MAP_ANONYMOUS, MAP_PRIVATE,
                                    PAGE_SIZE as P, PROT_READ, PROT_WRITE, VM_MAYBE_GUARD)
    mm = ptengine.MM()
    rw, anon = PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS
    a = mm.mmap(0, 8 * P, rw, anon)
    mm.mmap(0, 3 * P, PROT_READ, anon)
    assert guard_walk.guarded_vma_bytes(mm, VM_MAYBE_GUARD) == 0
    mm.madvise(a, P, MADV_GUARD_INSTALL)                  # flags the whole VMA, no split
    assert guard_walk.guarded_vma_bytes(mm, VM_MAYBE_GUARD) == 8 * P
    with pytest.raises(TypeError):
        guard_walk.guarded_vma_bytes(None, VM_MAYBE_GUARD)
