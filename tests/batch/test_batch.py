"""mm.batch and LiveMM.batch on the same arrays (API.md "Batched calls", calls.py)."""
import errno
import signal

import numpy as np
import pytest

import ptengine
from address_space.conftest import FAR, GiB
from ptengine.calls import FLAG_RESTART, FLAG_TOLERATE, CallOp, calls
from ptengine.constants import (MADV_DONTNEED, MADV_GUARD_INSTALL, MADV_GUARD_REMOVE,
                                MAP_ANONYMOUS, MAP_FIXED_NOREPLACE, MAP_NORESERVE,
                                MAP_PRIVATE, MAP_SHARED, MCL_CURRENT, PAGE_SIZE as P,
                                PROT_NONE, PROT_READ, PROT_WRITE)
from ptengine.iov import MAX_RW_COUNT
from ptengine.workloads.blocks import Batcher
from ptengine.workloads.metrics import CountingMM, SyscallCounter

RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS
NEW = ANON | MAP_FIXED_NOREPLACE
CANCELED = -errno.ECANCELED


def rel(rows, row, ref, *args):
    """Row `row` adds the result of row `ref` to its arguments numbered in args."""
    rows[row]["ref"] = ref
    rows[row]["flags"] |= sum(1 << k for k in args)
    return rows


def test_each_op(pair):
    rows = calls([
        ("mmap", FAR, 8 * P, RW, NEW),                          # 0
        ("mprotect", FAR + P, P, PROT_READ),                    # 1 split in three
        ("madvise", FAR + 3 * P, P, MADV_GUARD_INSTALL),        # 2
        ("touch", FAR + 3 * P, 1, 0),                           # 3 SIGSEGV: the guard
        ("touch", FAR + 4 * P, 2 * P, 1),                       # 4 faults in two pages
        ("process_madvise", [(FAR + 5 * P, P), (FAR + 6 * P, P)], MADV_GUARD_INSTALL),
        ("madvise", FAR + 5 * P, 2 * P, MADV_GUARD_REMOVE),     # 8
        ("mremap", FAR + 6 * P, 2 * P, 4 * P),                  # 9 grows in place
        ("mlock", FAR, P),                                      # 10
        ("munlock", FAR, P),                                    # 11
        ("mseal", FAR + 100 * P, P),                            # 12 ENOMEM: nothing there
        ("munmap", FAR + 7 * P, P),                             # 13
        ("mmap", FAR + 20 * P, P, PROT_NONE, NEW),              # 14
        ("munmap", FAR + 1, P),                                 # 15 EINVAL
        ("madvise", FAR, P, 12345),                             # 16 EINVAL
    ])
    results = pair.run(rows)
    assert results[0] == FAR and results[14] == FAR + 20 * P
    assert results[3] == signal.SIGSEGV and results[4] == 0
    assert results[5] == 2 * P and results[6:8] == [0, 0]
    assert results[9] == FAR + 6 * P and results[8] == results[10] == results[11] == 0
    assert results[12] == -errno.ENOMEM and results[15] == results[16] == -errno.EINVAL
    assert [r[:3] for r in pair.layout()][:2] == [(0, 1, "rw-p"), (1, 2, "r--p")]


def test_errors_do_not_stop_without_a_stop_rule(pair):
    rows = calls([("munmap", FAR + 1, P), ("mmap", FAR, P, RW, NEW), ("mmap", FAR, P, RW, NEW),
                  ("mprotect", FAR, P, PROT_READ)])
    assert pair.run(rows) == [-errno.EINVAL, FAR, -errno.EEXIST, 0]
    assert [r[:3] for r in pair.layout()] == [(0, 1, "r--p")]


def test_stop_error_and_tolerate(pair):
    rows = calls([("mmap", FAR, P, RW, NEW), ("munmap", FAR + 1, P),
                  ("mprotect", FAR, P, PROT_READ), ("mmap", FAR, P, RW, NEW),
                  ("mprotect", FAR, P, PROT_NONE)])
    rows[1]["flags"] = FLAG_TOLERATE
    assert pair.run(rows, stop="error") == [FAR, -errno.EINVAL, 0, -errno.EEXIST, CANCELED]
    assert [r[:3] for r in pair.layout()] == [(0, 1, "r--p")]


def test_stop_expected(pair):
    rows = calls([("mmap", FAR, 2 * P, RW, NEW), ("mprotect", FAR, P, PROT_READ),
                  ("mprotect", FAR + P, P, PROT_READ), ("munmap", FAR, 2 * P)])
    expected = np.array([FAR, 0, -errno.EINVAL, 0])           # row 2 succeeds: the stop
    assert pair.run(rows, stop=expected) == [FAR, 0, 0, CANCELED]
    assert [r[:3] for r in pair.layout()] == [(0, 2, "r--p")]


def test_rel_and_a_failed_ref(pair):
    rows = calls([("mmap", FAR, 4 * P, RW, NEW),
                  ("mprotect", P, P, PROT_READ),              # FAR + P via REL
                  ("mmap", FAR, P, RW, NEW),                  # EEXIST
                  ("munmap", 0, P),                           # its ref failed: cancelled
                  ("process_madvise", [(2 * P, P), (0, P)], MADV_GUARD_INSTALL),
                  ("touch", 2 * P, 1, 0)])
    rel(rows, 1, 0, 0)
    rel(rows, 3, 2, 0)
    rel(rows, 5, 0, 0)                  # IOVEC: FAR + 2P
    rel(rows, 6, 2, 0)                  # IOVEC whose ref failed: the call is not made
    rel(rows, 7, 0, 0)
    results = pair.run(rows)
    assert results == [FAR, 0, -errno.EEXIST, CANCELED, CANCELED, 0, CANCELED, 0]
    assert [r[:3] for r in pair.layout()] == [(0, 1, "rw-p"), (1, 2, "r--p"), (2, 4, "rw-p")]


def test_process_madvise_restarts_past_the_cap(pair):
    """3 GiB in two ranges: the first call is cut at MAX_RW_COUNT; RESTART re-issues the
    rest, as blocks.Batcher.flush() does, and the row's result is every byte."""
    big = 3 * GiB
    rows = calls([("mmap", FAR, big, RW, NEW | MAP_NORESERVE),
                  ("process_madvise", [(0, 2 * GiB), (2 * GiB, GiB)], MADV_GUARD_INSTALL),
                  ("process_madvise", [(0, 2 * GiB), (2 * GiB, GiB)], MADV_GUARD_INSTALL),
                  ("touch", big - P, 1, 0),
                  ("process_madvise", [(0, big)], MADV_GUARD_REMOVE)])
    for row in (2, 3, 5, 6, 7, 9):
        rel(rows, row, 0, 0)
    rows[4]["flags"] |= FLAG_RESTART
    rows[8]["flags"] |= FLAG_RESTART
    counters = [SyscallCounter(), SyscallCounter()]
    results = pair.run(rows, counters=counters)
    assert results == [FAR, MAX_RW_COUNT, 0, 0, big, 0, 0, signal.SIGSEGV, big, 0]
    assert counters[0].as_dict() == counters[1].as_dict()
    # the counts of the same calls made one by one through Batcher.flush()
    mm = ptengine.MM()
    one_by_one = CountingMM(mm)
    base = one_by_one.mmap(FAR, big, RW, NEW | MAP_NORESERVE)
    one_by_one.process_madvise([(base, 2 * GiB), (base + 2 * GiB, GiB)], MADV_GUARD_INSTALL)
    for advice, ranges in ((MADV_GUARD_INSTALL, [(0, 2 * GiB), (2 * GiB, GiB)]),
                           (MADV_GUARD_REMOVE, [(0, big)])):
        b = Batcher(one_by_one, advice)
        for start, n in ranges:
            b.add(base + start, n)
        b.flush()
    assert counters[0].as_dict() == one_by_one.counter.as_dict()
    mm.exit()


def test_files_and_touch_past_eof(pair):
    def files(system):
        return [system.create_file("one_page", P), system.create_file("other", 4 * P)]
    rows = calls([("mmap", FAR, 2 * P, PROT_READ, MAP_PRIVATE | MAP_FIXED_NOREPLACE, 0),
                  ("touch", FAR, 1, 0),
                  ("touch", FAR + P, 1, 0),                         # past EOF: SIGBUS
                  ("mmap", FAR + 4 * P, 2 * P, RW, MAP_SHARED | MAP_FIXED_NOREPLACE, 1, P),
                  ("touch", FAR + 4 * P, 2 * P, 1),
                  ("mmap", FAR + 8 * P, P, RW, MAP_SHARED | MAP_FIXED_NOREPLACE, 1, 1)])
    assert pair.run(rows, files=files) == [FAR, 0, signal.SIGBUS, FAR + 4 * P, 0,
                                           -errno.EINVAL]
    assert [r[:3] for r in pair.layout()] == [(0, 2, "r--p"), (4, 6, "rw-s")]


def test_an_exited_process_runs_no_batch(pair):
    for side in pair.sides:
        side.mm.exit()
        with pytest.raises(OSError) as e:
            side.mm.batch(calls([("munmap", FAR, P)]))
        assert e.value.errno == errno.ESRCH


def test_live_refuses_the_servers_own_mappings(pair):
    """Live only: the simulator has no server whose mappings a batch could break. A row
    over them is refused (LiveRangeError, a ValueError) before any row runs."""
    from ptengine.live import LiveRangeError
    live = pair.sides[1].mm
    start, end, _ = live.reserved[0]
    rows = calls([("mmap", FAR, P, RW, NEW), ("munmap", start, end - start)])
    with pytest.raises(LiveRangeError):
        live.batch(rows)
    assert pair.sides[1].layout() == []


def test_names(pair):
    """The host kernel lacks CONFIG_ANON_VMA_NAME (the simulator's default profile too):
    set_anon_name is EINVAL on both, with a name or without."""
    rows = calls([("mmap", FAR, P, RW, NEW), ("set_anon_name", FAR, P, 1),
                  ("set_anon_name", FAR, P, 2), ("set_anon_name", FAR, P, 0)])
    assert pair.run(rows, names=["heap", b"stack"]) == [FAR] + [-errno.EINVAL] * 3


def test_names_where_the_kernel_has_them():
    """Simulator only: the host kernel cannot name VMAs (no CONFIG_ANON_VMA_NAME); under
    the android profile, which has it, the rows' name indexes pick names= entries."""
    mm = ptengine.System(profile="android").spawn()
    rows = calls([("mmap", FAR, 2 * P, RW, NEW), ("set_anon_name", FAR, P, 2),
                  ("set_anon_name", FAR + P, P, 1), ("set_anon_name", FAR + P, P, 0)])
    results, _ = mm.batch(rows, names=["a", "b"])
    assert results.tolist() == [FAR, 0, 0, 0]
    assert [v.anon_name for v in mm.vmas() if v.start >= FAR] == ["b", None]
    mm.exit()


def test_brk(pair):
    """The break is each process's own (the live server has a heap): moved relative to
    the one brk(0) reports, through REL."""
    rows = rel(rel(calls([("brk", 0), ("brk", 2 * P), ("brk", 0)]), 1, 0, 0), 2, 0, 0)
    for side in pair.sides:
        results, _ = side.mm.batch(rows)
        start = int(results[0])
        assert results.tolist() == [start, start + 2 * P, start]


CALLS = [("mmap", FAR, 6 * P, RW, NEW), ("mprotect", FAR, P, PROT_READ),
         ("madvise", FAR + 2 * P, P, MADV_GUARD_INSTALL), ("madvise", FAR, P, MADV_DONTNEED),
         ("process_madvise", [(FAR + 3 * P, P), (FAR + 4 * P, P)], MADV_GUARD_INSTALL),
         ("process_madvise", [(FAR + 3 * P, P)], MADV_GUARD_REMOVE),
         ("madvise", FAR, P, 999), ("munmap", FAR + 1, P), ("mlockall", MCL_CURRENT),
         ("munlockall",), ("mremap", FAR + 5 * P, P, 2 * P, 0), ("touch", FAR, 1, 0),
         ("mseal", FAR + 5 * P, P), ("munmap", FAR, P),
         ("munmap", FAR + 1, P)]     # last, and failing: what SyscallCounter.last_call names


def test_counts_equal_countingmm(pair):
    counters = [SyscallCounter(), SyscallCounter()]
    results = pair.run(calls(CALLS), counters=counters)
    mm = ptengine.MM()
    counting = CountingMM(mm)
    for name, *args in CALLS:
        try:
            if name == "touch":
                counting.touch(*args[:2], write=bool(args[2]))
            else:
                getattr(counting, name)(*args)
        except (OSError, ptengine.Fault):
            pass
    for counter in counters:
        assert counter.as_dict() == counting.counter.as_dict()
        assert counter.last_call == counting.counter.last_call
    # map_count when a call last failed: the simulator's executor reads it then; the live
    # server's batch reports only results, so LiveMM reads it after the batch (its own
    # mappings included): a stop="error" batch's last row is the failed one.
    assert counters[0].failed_map_count == counting.counter.failed_map_count
    assert counters[1].failed_map_count == pair.sides[1].mm.map_count
    assert results[-2:] == [0, -errno.EINVAL]
    mm.exit()


def _bad_rows():
    """(what, rows, kwargs) of arrays that must be refused before any row runs; each
    starts with a good mmap."""
    good = ("mmap", FAR, P, RW, NEW)

    def with_row(*tuples, **fields):
        rows = calls([good, *tuples])
        for k, v in fields.items():
            rows[-1][k] = v
        return rows
    return [
        ("bad op", with_row(("munmap", FAR, P), op=99), {}),
        ("stray IOVEC", with_row(("munmap", FAR, P), op=CallOp.IOVEC), {}),
        ("IOVEC count past the end", calls([good, ("process_madvise", [(FAR, P)], 8)])[:2], {}),
        ("ref not earlier", with_row(("munmap", FAR, P), ref=1), {}),
        ("ref to an IOVEC row", calls([good, ("process_madvise", [(FAR, P)], 8),
                                       ("munmap", 0, P)]), {"ref": 2}),
        ("REL without ref", with_row(("munmap", FAR, P), flags=1), {}),
        ("REL on an IOVEC count", calls([good, ("process_madvise", [(FAR, P)], 8)]),
         {"ref": 0, "flags": 1, "row": 1}),
        ("mm != 0", with_row(("munmap", FAR, P), mm=1), {}),
        ("fd_index", with_row(("mmap", FAR, P, RW, MAP_PRIVATE, 0)), {}),
        ("name index", with_row(("set_anon_name", FAR, P, 2)), {"names": ["x"]}),
        ("stop length", with_row(("munmap", FAR, P)), {"stop": np.zeros(3)}),
        ("stop word", with_row(("munmap", FAR, P)), {"stop": "never"}),
        ("wrong dtype", np.zeros(2, dtype=[("op", "u1"), ("a", "<u8", (6,))]), {}),
        ("files of another kind", with_row(("munmap", FAR, P)), {"files": [3]}),
        ("names of another kind", with_row(("munmap", FAR, P)), {"names": [3]}),
    ]


@pytest.mark.parametrize("what,rows,kw", _bad_rows(), ids=[b[0] for b in _bad_rows()])
def test_bad_arrays_raise_before_anything_runs(pair, what, rows, kw):
    at = kw.pop("row", -1)
    for field in ("ref", "flags"):
        if field in kw:
            rows[at][field] = kw.pop(field)
    for side in pair.sides:
        before = side.mm.map_count
        with pytest.raises((ValueError, TypeError)):
            side.mm.batch(rows, **kw)
        assert side.mm.map_count == before and side.layout() == []


def test_calls_from_tuples():
    rows = calls([("mmap", 0, P, RW, ANON), ("touch", FAR), ("mremap", FAR, P, 2 * P),
                  ("process_madvise", [(FAR, P), (FAR + P, 2 * P)], MADV_GUARD_INSTALL, 0),
                  ("munlockall",), ("mmap", -1, P, RW, ANON, 3, 8192)])
    assert rows.dtype == ptengine.CALL_DTYPE and rows.dtype.itemsize == 56
    assert rows["op"].tolist() == [CallOp.MMAP, CallOp.TOUCH, CallOp.MREMAP,
                                   CallOp.PROCESS_MADVISE, CallOp.IOVEC, CallOp.IOVEC,
                                   CallOp.MUNLOCKALL, CallOp.MMAP]
    assert rows["ref"].tolist() == [-1] * 8 and not rows["flags"].any()
    assert rows["a"][0].tolist() == [0, P, RW, ANON, 2**64 - 1, 0]
    assert rows["a"][1].tolist() == [FAR, 1, 0, 0, 0, 0]
    assert rows["a"][3].tolist()[:3] == [2, MADV_GUARD_INSTALL, 0]
    assert rows["a"][5].tolist()[:2] == [FAR + P, 2 * P]
    assert rows["a"][7].tolist() == [2**64 - 1, P, RW, ANON, 3, 8192]
    assert len(calls([])) == 0
    with pytest.raises(ValueError):
        calls([("fork",)])
    with pytest.raises(ValueError):
        calls([("munmap", FAR)])
    with pytest.raises(ValueError):
        calls([("munmap", FAR, P, 0)])
    with pytest.raises(TypeError):
        calls([("munmap", FAR, 1.0)])
    with pytest.raises(TypeError):
        calls([("process_madvise", [FAR], MADV_GUARD_INSTALL)])
    with pytest.raises(ValueError):
        calls([("munmap", 1 << 64, P)])
