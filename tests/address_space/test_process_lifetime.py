"""A process lives until exit(), as in the kernel; Python code ends one the way it ends a
subprocess: `with mm.fork() as child:` (or `with system.spawn() as p:`) exits it when the
block is left, and `system.processes` lists the live ones (issue 11, item 8).

The scenarios with a `with` block run on both backends. What happens to a process whose
last reference is dropped is the simulator's own matter (the kernel has no such thing as a
dropped handle: a real process lives on), so those scenarios run on the simulator only.
"""
import gc
import warnings
import weakref

import pytest

import ptengine
from .conftest import ANON, RW, P, errno_of


def test_with_fork_exits_the_child(env):
    mm = env.mm
    a = mm.mmap(0, 4 * P, RW, ANON)
    mm.write(a, b"parent")
    assert env.system.processes == [mm]
    with mm.fork() as child:
        assert set(map(id, env.system.processes)) == {id(mm), id(child)}
        child.write(a, b"child!")
        assert mm.read(a, 6) == b"parent"
    assert env.system.processes == [mm]
    assert errno_of(child.mmap, 0, P, RW, ANON) == "ESRCH"
    assert mm.read(a, 6) == b"parent"


def test_with_spawn_exits_the_process(env):
    with env.system.spawn() as other:
        other.mmap(0, P, RW, ANON)
        assert len(env.system.processes) == 2
    assert env.system.processes == [env.mm]
    assert errno_of(other.munmap, 0, P) == "ESRCH"


def test_an_exception_in_the_block_still_exits(env):
    with pytest.raises(KeyError):
        with env.mm.fork() as child:
            raise KeyError("boom")
    assert errno_of(child.mmap, 0, P, RW, ANON) == "ESRCH"
    assert env.system.processes == [env.mm]


# --- the simulator: dropped processes ------------------------------------------------------

def _parent_with_memory():
    system = ptengine.System()
    mm = system.spawn()
    a = mm.mmap(0, 64 * P, RW, ANON)
    mm.touch(a, 64 * P, write=True)
    mm.madvise(a + 32 * P, 4 * P, ptengine.MADV_GUARD_INSTALL)
    return system, mm, a


def test_dropping_a_live_child_warns():
    system, mm, a = _parent_with_memory()
    child = mm.fork()
    with pytest.warns(ResourceWarning, match="dropped without exit"):
        del child


def test_a_dropped_child_gives_back_its_address_space():
    """c = mm.fork(); del c: the System does not keep the child (it used to keep its
    whole address space until the System went)."""
    system, mm, a = _parent_with_memory()
    frames_before, tables_before = system.frames.nr_used, mm.pt.pgtables_bytes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        child = mm.fork()
        child.touch(a, 16 * P, write=True)            # COW: 16 frames of its own
        gone = weakref.ref(child)
        assert system.frames.nr_used == frames_before + 16
        del child
    assert gone() is None                             # freed at once, no cycle to collect
    assert system.processes == [mm]
    assert system.frames.nr_used == frames_before
    system.frames.check([mm.pt])
    assert mm.pt.pgtables_bytes == tables_before
    mm.check()


def test_a_child_dropped_after_a_fault_goes_too():
    """The soak's leak: a child faults before its exit() and the error skips the exit."""
    system, mm, a = _parent_with_memory()

    def child_work():
        child = mm.fork()
        child.touch(a + 32 * P, P)                    # a guard page: SIGSEGV
        child.exit()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        for _ in range(20):
            with pytest.raises(ptengine.SegmentationFault):
                child_work()
    gc.collect()
    assert system.processes == [mm]


def test_exited_and_sole_processes_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        system, mm, a = _parent_with_memory()
        with mm.fork():
            pass
        child = mm.fork()
        child.exit()
        del child
        del mm                    # the System's last process: the whole machine goes
        gc.collect()


def test_truncation_reaches_every_live_mapping_and_no_dropped_one():
    """The reverse mapping (unmap_mapping_range) walks system.processes: the live ones."""
    system = ptengine.System()
    mm = system.spawn()
    f = system.create_file("shared", 4 * P)
    a = mm.mmap(0, 4 * P, RW, ptengine.MAP_SHARED, f, 0)
    mm.write(a, b"x" * (4 * P))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        with mm.fork() as child:
            lost = mm.fork()
            del lost
            assert [m for m, _ in system.mappings_of(f.inode)] == [mm, child]
            f.truncate(P)
            assert mm.access(a + 2 * P) == child.access(a + 2 * P) != None    # SIGBUS
            assert mm.read(a, 1) == child.read(a, 1) == b"x"
    mm.check()


def test_a_failed_construction_is_not_a_live_process(monkeypatch):
    """An MM whose __init__ fails half-way is no process: no warning, and nothing lost in
    its finaliser (sys.unraisablehook sees what would print "Exception ignored")."""
    lost = []
    monkeypatch.setattr("sys.unraisablehook", lambda u: lost.append(u.exc_value))
    system = ptengine.System()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        with pytest.raises(TypeError):
            system.spawn(mmap_base="high")        # fails after the address space is made
        gc.collect()
    assert lost == []
    assert system.processes == []
