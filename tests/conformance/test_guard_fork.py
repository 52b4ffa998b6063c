"""guard-regions.c tests 12-14: fork copies markers (but not under WIPEONFORK), and the
child's page tables are its own."""
import pytest

from ptengine.constants import MADV_GUARD_INSTALL, MADV_GUARD_REMOVE, MADV_WIPEONFORK
from ptengine.constants import PROT_READ, PROT_WRITE

from .conftest import P, GuardTest, ok

RW = PROT_READ | PROT_WRITE


def child_of(g):
    """The forked process, wrapped in the same helpers (same backing and file)."""
    child = GuardTest.__new__(GuardTest)
    child.__dict__.update(g.__dict__)
    child.mm = g.mm.fork()
    return child


def test_fork(g):
    """12. The child inherits the markers; its REMOVE does not reach the parent."""
    ptr = g.mmap_(None, 10, RW)
    g.madvise(ptr, 5, MADV_GUARD_INSTALL)

    c = child_of(g)
    assert [c.try_rw(ptr + i * P) for i in range(10)] == [i >= 5 for i in range(10)]
    c.madvise(ptr, 10, MADV_GUARD_REMOVE)
    assert all(c.try_rw(ptr + i * P) for i in range(10))
    c.mm.exit()

    assert [g.try_rw(ptr + i * P) for i in range(10)] == [i >= 5 for i in range(10)]
    ok(g.mm.munmap(ptr, 10 * P))


@pytest.mark.variants("anon")
def test_fork_cow(g):
    """13. In the child, INSTALL then REMOVE discards its COW view: it reads zeroes, while
    the parent keeps its data."""
    mm = g.mm
    ptr = g.mmap_(None, 10, RW)
    data = bytes(ord("a") + (i % 26) for i in range(10 * P))
    mm.write(ptr, data)

    c = child_of(g)
    assert c.mm.read(ptr, 10 * P) == data
    c.madvise(ptr, 10, MADV_GUARD_INSTALL)
    c.madvise(ptr, 10, MADV_GUARD_REMOVE)
    assert c.mm.read(ptr, 10 * P) == bytes(10 * P)
    c.mm.exit()

    assert mm.read(ptr, 10 * P) == data
    ok(mm.munmap(ptr, 10 * P))


@pytest.mark.variants("anon")
def test_fork_wipeonfork(g):
    """14. Under WIPEONFORK the child gets no page tables, so no markers."""
    ptr = g.mmap_(None, 10, RW)
    g.madvise(ptr, 10, MADV_WIPEONFORK)
    g.madvise(ptr, 5, MADV_GUARD_INSTALL)

    c = child_of(g)
    assert all(c.try_rw(ptr + i * P) for i in range(10))
    c.mm.exit()

    assert [g.try_rw(ptr + i * P) for i in range(10)] == [i >= 5 for i in range(10)]
    ok(g.mm.munmap(ptr, 10 * P))
