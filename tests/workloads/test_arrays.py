"""A recorded model run becomes one array of calls (workloads.arrays) that reproduces every
result on a fresh process of either backend, with addresses relative to the rows that
made the mappings they fall in.

The arrays are run here row by row through the public methods (`run_rows`, resolving
ref/REL as dtype.md says the executors do): an oracle for the array's meaning that does
not depend on the batch executors it is made for.
"""
import errno

import numpy as np
import pytest

from ptengine import constants as C
from ptengine.calls import FLAG_TOLERATE, NO_FILE, CallOp
from ptengine.errors import Fault
from ptengine.workloads import WORKLOADS, Strategy, SyscallCounter, run
from ptengine.workloads.arrays import from_log
from ptengine.workloads.runner import close_backend, open_backend

# Every registered model at a size both backends run in seconds. Models that fork are not
# one process's array (FORK rows are later work): from_log refuses them.
SIZES = {
    "glibc_threads": {"n": 40, "join": True, "cache_size": 100 << 20},
    "musl_churn": {"live": 20, "cycles": 30},
    "android_app": {"threads": 6, "java_fraction": 0.5, "background": 10},
    "jvm": {"java_threads": 10, "native_threads": 3, "overflows": 5},
    "large_alloc": {"blocks": 20, "churn": 20},
    "region_guards": {"guards": 100},
    "gwp_asan": {"events": 60},
    "fiber_pool": {"fibers": 10, "pattern": "bursts", "burst": 5, "rounds": 3},
    "wasm": {"memories": 3, "grow_steps": 2},
}
FORKING = {"android_device"}
SHIFT = (1 << 30) + C.PAGE_SIZE


def run_rows(mm, arr):
    """Results of the array's rows called one by one on mm: return value, -errno, the
    signal of a faulting touch; a row whose ref row failed gets -ECANCELED."""
    rows, results = arr.calls, np.zeros(len(arr.calls), dtype=np.int64)
    i = 0
    while i < len(rows):
        op, n = int(rows[i]["op"]), 1
        a = _resolved(rows[i], results)
        if a is None:
            results[i] = -errno.ECANCELED
        elif op == CallOp.PROCESS_MADVISE:
            n += a[0]
            iovecs = [_resolved(rows[j], results) for j in range(i + 1, i + n)]
            results[i] = _call(mm.process_madvise, [(v[0], v[1]) for v in iovecs], a[1], a[2])
        else:
            results[i] = _call(*_method(mm, arr, op, a))
        i += n
    return results


def _resolved(row, results):
    a = [int(x) for x in row["a"]]
    for k in range(6):
        if row["flags"] & (1 << k):
            base = int(results[row["ref"]])
            if base < 0:
                return None
            a[k] = (a[k] + base) & (2**64 - 1)
    return a


def _method(mm, arr, op, a):
    if op == CallOp.MMAP:
        assert a[4] == NO_FILE
        return mm.mmap, a[0], a[1], a[2], a[3], None, a[5]
    if op == CallOp.ANON_NAME:
        return mm.set_anon_name, a[0], a[1], arr.names[a[2] - 1] if a[2] else None
    if op == CallOp.TOUCH:
        return (lambda addr, size, write: mm.touch(addr, size, write=bool(write))), *a[:3]
    name, arity = {CallOp.MUNMAP: ("munmap", 2), CallOp.MPROTECT: ("mprotect", 3),
                   CallOp.MADVISE: ("madvise", 3), CallOp.MREMAP: ("mremap", 5),
                   CallOp.MLOCK: ("mlock", 3), CallOp.MUNLOCK: ("munlock", 2),
                   CallOp.MLOCKALL: ("mlockall", 1), CallOp.MUNLOCKALL: ("munlockall", 0),
                   CallOp.MSEAL: ("mseal", 3), CallOp.BRK: ("brk", 1)}[op]
    return (getattr(mm, name), *a[:arity])


def _call(method, *args):
    try:
        result = method(*args)
    except OSError as e:
        return -e.errno
    except Fault as e:
        return int(e.signal)
    return 0 if result is None else result


def _profile(name, backend):
    """The model's profile, or the host's for the host kernel (as compare --live runs it:
    the android models' names need CONFIG_ANON_VMA_NAME, which a host may lack)."""
    if backend == "live":
        from ptengine import live
        return live.host_profile()
    return WORKLOADS[name].profile


def test_every_registered_model_is_sized_here():
    assert set(WORKLOADS) == set(SIZES) | FORKING


@pytest.mark.parametrize("strategy", list(Strategy))
@pytest.mark.parametrize("name", sorted(SIZES))
def test_a_model_run_as_an_array_reproduces_every_result(backend, name, strategy):
    """Recorded on the simulator (as the runner runs a model for its figures), run as rows
    on a fresh process of each backend: every row returns what the model's call returned."""
    profile = _profile(name, backend)
    result = run(name, strategy, SIZES[name], record_calls=True, profile=profile)
    arr = result.array()
    assert len(arr) >= len(result.calls) and arr.expected.tolist()[:1] == [result.calls[0][2]]
    system, mm = open_backend(backend, profile=profile)
    try:
        got = run_rows(mm, arr)
    finally:
        close_backend(system, [mm])
    assert arr.first_difference(got) is None, \
        f"row {arr.first_difference(got)}: {arr.calls[arr.first_difference(got)]}"


@pytest.mark.parametrize("strategy", list(Strategy))
@pytest.mark.parametrize("name", sorted(SIZES))
def test_a_model_array_runs_as_one_batch(backend, name, strategy):
    """mm.batch(array, stop=expected) on a fresh process of either backend runs every row
    to the recorded result, and counts what CountingMM counted when the model ran."""
    profile = _profile(name, backend)
    result = run(name, strategy, SIZES[name], record_calls=True, profile=profile)
    arr = result.array()
    system, mm = open_backend(backend, profile=profile)
    counter = SyscallCounter()
    try:
        got, ns = arr.run(mm, counter=counter)
    finally:
        close_backend(system, [mm])
    assert arr.first_difference(got) is None and ns > 0
    assert counter.as_dict() == result.syscalls


def test_addresses_are_relative_to_the_rows_that_mapped_them(sim):
    """On a process whose placement differs (a mapping already sits where the first one
    went), every mapping lands elsewhere by one offset, and every other call still
    returns what it did: its addresses followed the rows they came from."""
    result = run("large_alloc", Strategy.GUARD, {"blocks": 20, "churn": 20},
                 record_calls=True)
    arr = result.array()
    system, mm = open_backend("sim")
    try:
        # Not a multiple of 2 MiB: placement does not align it, so no gap is left above.
        mm.mmap(0, SHIFT, C.PROT_NONE, C.MAP_PRIVATE | C.MAP_ANONYMOUS)
        got = run_rows(mm, arr)
    finally:
        close_backend(system, [mm])
    mapped = arr.calls["op"] == CallOp.MMAP
    shift = set((arr.expected[mapped] - got[mapped]).tolist())
    assert shift == {SHIFT}
    assert (got[~mapped] == arr.expected[~mapped]).all()


def test_rel_follows_munmap_map_fixed_and_mremap():
    page = C.PAGE_SIZE
    A, B = 0x7f0000000000, 0x7e0000000000
    log = [("mmap", (0, 4 * page, 3, C.MAP_PRIVATE | C.MAP_ANONYMOUS), A),
           ("munmap", (A + page, page), 0),                                   # splits A
           ("mmap", (A + 2 * page, page, 0, C.MAP_FIXED | C.MAP_PRIVATE | C.MAP_ANONYMOUS),
            A + 2 * page),                                                     # over A
           ("madvise", (A + 2 * page, page, C.MADV_GUARD_INSTALL), 0),
           ("madvise", (A + 3 * page, page, C.MADV_GUARD_INSTALL), 0),
           ("madvise", (A + page, page, C.MADV_GUARD_INSTALL), -errno.ENOMEM),  # unmapped
           ("mremap", (A + 3 * page, page, page, C.MREMAP_MAYMOVE | C.MREMAP_FIXED, B), B),
           ("touch", (B, page, True), 0),
           ("set_anon_name", (A, page, "x"), 0), ("set_anon_name", (A, page, None), 0),
           ("process_madvise", ([(A, page), (B, page)], C.MADV_GUARD_INSTALL), 2 * page)]
    arr = from_log(log)
    rows = arr.calls
    assert list(rows["op"]) == [CallOp.MMAP, CallOp.MUNMAP, CallOp.MMAP, CallOp.MADVISE,
                                CallOp.MADVISE, CallOp.MADVISE, CallOp.MREMAP, CallOp.TOUCH,
                                CallOp.ANON_NAME, CallOp.ANON_NAME, CallOp.PROCESS_MADVISE,
                                CallOp.IOVEC, CallOp.IOVEC]
    assert list(rows["ref"]) == [-1, 0, 0, 2, 0, -1, 0, 6, 0, 0, -1, 0, 6]
    assert rows["a"][2][0] == 2 * page and rows["a"][3][0] == 0 and rows["a"][4][0] == 3 * page
    assert rows["a"][5][0] == A + page                  # no longer mapped: absolute
    assert rows["flags"][5] == FLAG_TOLERATE            # the model went on after it
    assert rows["flags"][6] == 0b1 and rows["a"][6][4] == B    # new_addr maps nothing yet
    assert rows["a"][0][4] == NO_FILE and arr.names == ["x"]
    assert list(rows["a"][8][:3]) == [0, page, 1] and rows["a"][9][2] == 0
    assert list(rows["a"][10][:3]) == [2, C.MADV_GUARD_INSTALL, 0]
    assert arr.expected.tolist() == [r for *_, r in log[:10]] + [2 * page, 0, 0]
    assert from_log(log[:6], stopped=True).calls["flags"][5] == 0     # the run stopped here


def test_a_forking_model_is_refused():
    result = run("android_device", Strategy.GUARD, {"processes": 1, "threads": 1,
                                                    "background": 4}, record_calls=True)
    with pytest.raises(ValueError, match="fork"):
        result.array()
