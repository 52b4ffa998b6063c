"""The live backend itself: errno mapping, fault reports, fork, robustness, /proc views."""
import errno
import os
import signal
import time

import numpy as np
import pytest

from ptengine import live
from ptengine.constants import (BUS_ADRERR, BUS_MCEERR_AR, F_SEAL_WRITE, MADV_DONTFORK,
                                MADV_GUARD_INSTALL, MADV_GUARD_REMOVE, MADV_POPULATE_READ,
                                MAP_ANONYMOUS, MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_PRIVATE,
                                MAP_SHARED, MFD_ALLOW_SEALING, MLOCK_ONFAULT, MREMAP_MAYMOVE,
                                PAGE_IS_GUARD, PAGE_SIZE, PM_PFRAME_MASK, PM_PRESENT, PM_SWAP,
                                PROT_EXEC, PROT_NONE, PROT_READ, PROT_WRITE, SEGV_ACCERR,
                                SEGV_MAPERR, VM_LOCKED, VM_MAYBE_GUARD, VM_READ, VM_SHARED,
                                VM_WRITE)
from ptengine.errors import BusError, SegmentationFault

pytestmark = pytest.mark.live

P = PAGE_SIZE
RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS


def anon(mm, npages, prot=RW):
    return mm.mmap(0, npages * P, prot, ANON)


def errno_of(call, *args, **kw):
    with pytest.raises(OSError) as e:
        call(*args, **kw)
    return e.value.errno


# --- errno -------------------------------------------------------------------------------

def test_errno_is_the_kernels(mm, system):
    p = anon(mm, 4)
    assert errno_of(mm.munmap, p + 1, P) == errno.EINVAL
    assert errno_of(mm.madvise, p, P, 9999) == errno.EINVAL
    assert errno_of(mm.mprotect, p - P, P, PROT_READ) == errno.ENOMEM
    assert errno_of(mm.mmap, p, P, RW, ANON | MAP_FIXED_NOREPLACE) == errno.EEXIST
    assert errno_of(mm.mremap, p, P, 2 * P, 0) == errno.ENOMEM   # p+P is mapped
    mm.madvise(p, P, MADV_GUARD_INSTALL)
    assert errno_of(mm.madvise, p, 4 * P, MADV_POPULATE_READ) == errno.EFAULT
    assert errno_of(mm.mlock, p, 4 * P) == errno.ENOMEM
    assert mm.find_vma(p).flags & VM_LOCKED          # populate failed, the flag stayed
    assert errno_of(mm.process_madvise, [(p, P)], MADV_GUARD_INSTALL, 1) == errno.EINVAL
    assert errno_of(mm.process_madvise, [(p, P)] * 1025, MADV_GUARD_INSTALL) == errno.EINVAL

    ro = system.create_file("ro.bin", 4 * P).reopen(readonly=True)
    assert errno_of(mm.mmap, 0, P, RW, MAP_SHARED, ro) == errno.EACCES
    ro.close()
    assert errno_of(mm.mmap, 0, P, PROT_READ, MAP_SHARED, ro) == errno.EBADF


def test_mseal_blocks_unmap_but_not_guards_on_writable_memory(mm):
    p = anon(mm, 2)
    assert mm.mseal(p, 2 * P) == 0
    assert errno_of(mm.munmap, p, P) == errno.EPERM
    assert mm.madvise(p, P, MADV_GUARD_INSTALL) == 0      # writable anon: allowed
    assert mm.access(p) is signal.SIGSEGV


def test_success_returns_the_syscall_result(mm):
    p = anon(mm, 4)
    assert mm.madvise(p, P, MADV_GUARD_INSTALL) == 0
    assert mm.process_madvise([(p + P, P), (p + 2 * P, 0), (p + 3 * P, P)],
                              MADV_GUARD_INSTALL) == 2 * P
    assert mm.process_madvise([], MADV_GUARD_REMOVE) == 0
    assert mm.mlock(p, 4 * P, MLOCK_ONFAULT) == 0
    q = mm.mremap(p, 4 * P, 8 * P, MREMAP_MAYMOVE)
    assert q % P == 0 and mm.access(q) is signal.SIGSEGV
    brk = mm.brk(0)
    assert mm.brk(brk + 3 * P) == brk + 3 * P


# --- wrong input -------------------------------------------------------------------------

@pytest.mark.parametrize("call", [
    lambda mm: mm.mmap("0", P, RW, ANON),
    lambda mm: mm.mmap(0, 1.5, RW, ANON),
    lambda mm: mm.mmap(0, P, RW, MAP_SHARED, fd=3),
    lambda mm: mm.munmap(None, P),
    lambda mm: mm.madvise(0, P, "guard"),
    lambda mm: mm.process_madvise([1, 2], MADV_GUARD_INSTALL),
    lambda mm: mm.process_madvise([(0, "x")], MADV_GUARD_INSTALL),
    lambda mm: mm.process_madvise(None, MADV_GUARD_INSTALL),
    lambda mm: mm.write(0, "text"),
    lambda mm: mm.read(0.0, 1),
    lambda mm: mm.access(object()),
    lambda mm: mm.set_anon_name(0, P, 42),
    lambda mm: mm.pagemap("a", P),
])
def test_wrong_types_raise_type_error(mm, call):
    with pytest.raises(TypeError):
        call(mm)
    assert mm.access(0) is signal.SIGSEGV      # and the server is still there


def test_out_of_range_integers(mm):
    with pytest.raises(OverflowError):
        mm.munmap(1 << 64, P)
    # Negative values reach the kernel as C would pass them: (size_t)-4096.
    assert errno_of(mm.munmap, -P, P) == errno.EINVAL
    assert errno_of(mm.mmap, 0, -1, RW, ANON) == errno.ENOMEM
    with pytest.raises(ValueError):
        mm.access(0, write=True, exec=True)


# --- faults ------------------------------------------------------------------------------

def fault_of(call, *args, **kw):
    with pytest.raises((SegmentationFault, BusError)) as e:
        call(*args, **kw)
    return type(e.value), e.value.code, e.value.address


def test_fault_reports(mm, system):
    p = anon(mm, 4)
    mm.munmap(p + 3 * P, P)
    mm.mprotect(p + P, P, PROT_READ)
    mm.mprotect(p + 2 * P, P, PROT_NONE)
    mm.madvise(p, P, MADV_GUARD_INSTALL)

    assert fault_of(mm.read, p + 5, 1) == (SegmentationFault, SEGV_MAPERR, p + 5)
    assert fault_of(mm.write, p + P + 7, b"z") == (SegmentationFault, SEGV_ACCERR, p + P + 7)
    assert fault_of(mm.read, p + 2 * P, 1) == (SegmentationFault, SEGV_ACCERR, p + 2 * P)
    assert fault_of(mm.read, p + 3 * P + 1, 1) == (SegmentationFault, SEGV_MAPERR, p + 3 * P + 1)
    assert fault_of(mm.touch, p + P, 3 * P, write=True) == (
        SegmentationFault, SEGV_ACCERR, p + P)
    assert mm.access(p + P) is None
    assert mm.access(p + P, write=True) is signal.SIGSEGV
    # An instruction fetch from a non-executable page faults in the hardware itself.
    assert mm.access(p + P, exec=True) is signal.SIGSEGV
    assert mm.access(p + 3 * P, exec=True) is signal.SIGSEGV

    # Past the end of a file: SIGBUS.
    f = system.create_file("short.bin", P)
    q = mm.mmap(0, 2 * P, PROT_READ, MAP_SHARED, f)
    assert mm.read(q, 1) == b"\0"
    assert fault_of(mm.read, q + P, 1) == (BusError, BUS_ADRERR, q + P)


def test_exec_access_goes_through_the_guard(mm):
    p = anon(mm, 2, RW | PROT_EXEC)
    mm.madvise(p, P, MADV_GUARD_INSTALL)
    assert mm.access(p, exec=True) is signal.SIGSEGV
    assert mm.access(p + P, exec=True) is None


def test_a_copy_stops_at_the_first_faulting_page(mm):
    p = anon(mm, 3)
    mm.madvise(p + 2 * P, P, MADV_GUARD_INSTALL)
    # The write crosses from page 1 into the guard: page 1 is written, then it faults.
    assert fault_of(mm.write, p + 2 * P - 2, b"abcd") == (SegmentationFault, SEGV_MAPERR,
                                                         p + 2 * P)
    assert mm.read(p + 2 * P - 2, 2) == b"ab"
    assert fault_of(mm.read, p, 3 * P) == (SegmentationFault, SEGV_MAPERR, p + 2 * P)
    q = anon(mm, 4)
    mm.write(q + 10, bytes(range(256)) * 40)
    assert mm.read(q + 10, 10240) == bytes(range(256)) * 40


def test_poison_raises_sigbus(mm):
    p = anon(mm, 2)
    assert mm.install_poison(p, P) == 0
    typ, code, addr = fault_of(mm.read, p, 1)
    # BUS_MCEERR_AR needs CONFIG_MEMORY_FAILURE; without it the kernel says BUS_ADRERR.
    assert (typ, addr) == (BusError, p) and code in (BUS_MCEERR_AR, BUS_ADRERR)
    entry = int(mm.pagemap(p, P)[0])
    assert entry & PM_SWAP and entry & PM_PFRAME_MASK == 31 | (2 << 5)
    assert mm.access(p + P) is None


def test_uffd_missing_fault_is_sigbus_not_a_hang(mm):
    p = anon(mm, 2)
    mm.uffd_register(p, 2 * P, 1)
    mm.madvise(p, P, MADV_GUARD_INSTALL)
    assert mm.access(p) is signal.SIGSEGV       # the guard wins over the userfault
    assert mm.access(p + P) is signal.SIGBUS    # UFFD_FEATURE_SIGBUS: no handler needed
    assert mm.uffd_unregister(p, 2 * P) == 0
    assert mm.access(p + P) is None


# --- fork --------------------------------------------------------------------------------

def test_fork_gives_an_independent_copy(mm):
    p = anon(mm, 4)
    mm.write(p, b"parent")
    d = anon(mm, 1)
    mm.madvise(d, P, MADV_DONTFORK)
    mm.madvise(p + P, P, MADV_GUARD_INSTALL)

    child = mm.fork()
    assert child.pid != mm.pid
    assert child.read(p, 6) == b"parent"
    assert child.find_vma(d) is None                # DONTFORK: not in the child
    child.write(p, b"child!")
    child.madvise(p + P, P, MADV_GUARD_REMOVE)
    assert mm.read(p, 6) == b"parent"
    assert mm.access(p + P) is signal.SIGSEGV

    grandchild = child.fork()
    assert grandchild.read(p, 6) == b"child!"
    child.exit()
    child.exit()                                    # idempotent, like the simulator's
    assert not child.alive
    with pytest.raises(ProcessLookupError):         # ESRCH, like the simulator's
        child.read(p, 1)
    assert grandchild.access(p + P) is None          # outlives its parent
    grandchild.exit()
    assert mm.read(p, 6) == b"parent"


def test_servers_are_reaped(system):
    mm = system.spawn()
    child = mm.fork()
    pids = [mm.pid, child.pid]
    system.close()
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}"), f"server {pid} left behind"


# --- robustness --------------------------------------------------------------------------

def test_a_killed_server_raises_a_clear_error(mm):
    os.kill(mm.pid, signal.SIGKILL)
    with pytest.raises(live.ServerDied, match="SIGKILL"):
        mm.access(0)
    with pytest.raises(ProcessLookupError):
        mm.read(0, 1)


def test_a_stuck_server_times_out_and_is_killed():
    with live.LiveSystem(timeout=0.5) as system:
        mm = system.spawn()
        os.kill(mm.pid, signal.SIGSTOP)
        t = time.monotonic()
        with pytest.raises(live.LiveServerError, match="did not answer"):
            mm.access(0)
        assert time.monotonic() - t < 5
        assert not os.path.exists(f"/proc/{mm.pid}")


def test_the_servers_own_mappings_are_off_limits(mm):
    text = mm.reserved[0][0]
    with pytest.raises(live.LiveRangeError):
        mm.munmap(text, P)
    with pytest.raises(live.LiveRangeError):
        mm.mmap(text, P, RW, ANON | MAP_FIXED)
    with pytest.raises(live.LiveRangeError):
        mm.madvise(0, 1 << 47, MADV_GUARD_INSTALL)
    with pytest.raises(live.LiveRangeError):
        mm.write(text + 1, b"x")
    if any(label == "[heap]" for _, _, label in mm.reserved):   # static glibc's TLS
        with pytest.raises(live.LiveRangeError):
            mm.brk(mm.initial_brk - P)
    assert mm.read(text, 4) == b"\x7fELF"          # reading is harmless
    assert errno_of(mm.munmap, text + 1, P) == errno.EINVAL   # the kernel rejects it first


def test_layout_is_not_randomised(system):
    a, b = system.spawn(), system.spawn()
    pa, pb = anon(a, 1), anon(b, 1)
    assert pa == pb and 0x7FFFF0000000 < pa < 0x7FFFF7FFF000


# --- files -------------------------------------------------------------------------------

def test_files_are_shared_with_the_server(mm, system):
    f = system.create_file("data.bin", 4 * P)
    f.pwrite(P, b"hello")
    p = mm.mmap(0, 4 * P, RW, MAP_SHARED, f)
    assert mm.read(p + P, 5) == b"hello"
    mm.write(p, b"from-mm")
    assert f.pread(0, 7) == b"from-mm"
    f.punch_hole(0, P)
    assert mm.read(p, 7) == bytes(7) and f.size == 4 * P
    f.truncate(P)
    assert mm.access(p + P) is signal.SIGBUS
    vma = mm.find_vma(p)
    assert vma.file is f and vma.flags & (VM_READ | VM_WRITE | VM_SHARED) == \
        VM_READ | VM_WRITE | VM_SHARED


def test_memfd_seals(mm, system):
    m = system.memfd_create("sealed", MFD_ALLOW_SEALING)
    m.truncate(P)
    m.add_seals(F_SEAL_WRITE)
    assert m.seals & F_SEAL_WRITE
    assert errno_of(mm.mmap, 0, P, RW, MAP_SHARED, m) == errno.EPERM
    p = mm.mmap(0, P, PROT_READ, MAP_SHARED, m)
    assert mm.find_vma(p).file is m
    assert errno_of(system.memfd_create("plain").add_seals, F_SEAL_WRITE) == errno.EPERM


# --- /proc views -------------------------------------------------------------------------

def test_vmas_maps_status(mm):
    before = mm.map_count
    p = anon(mm, 8)
    assert mm.map_count == before + 1
    vma = mm.find_vma(p)
    assert (vma.start, vma.end, vma.prot) == (p, p + 8 * P, RW)
    assert "gu" not in vma.vmflags
    mm.madvise(p, P, MADV_GUARD_INSTALL)
    assert mm.find_vma(p).flags & VM_MAYBE_GUARD
    assert [v.start for v in mm.user_vmas()] == [p]
    assert f"{p:x}-{p + 8 * P:x} rw-p" in mm.maps()
    assert mm.find_vma(p - 1) is None or mm.find_vma(p - 1).end <= p
    assert mm.find_vma(p + 8 * P) is None or mm.find_vma(p + 8 * P).start >= p + 8 * P

    mm.mlock(p + P, 2 * P)
    st = mm.status()
    assert st["VmLck"] == 8 and st["map_count"] == mm.map_count == before + 3
    assert {"VmSize", "VmRSS", "RssAnon", "RssFile", "RssShmem", "VmPTE"} <= st.keys()


def test_pagemap_and_a_long_pagemap_scan(mm):
    n = 10000
    p = anon(mm, n)
    results, ns = mm.batch([("madvise", p + i * P, P, MADV_GUARD_INSTALL)
                            for i in range(0, n, 2)])
    assert results.tolist() == [0] * (n // 2) and ns > 0
    mm.write(p + P, b"x")
    pm = mm.pagemap(p, 4 * P)
    assert pm.dtype == np.uint64 and len(pm) == 4
    assert int(pm[1]) & PM_PRESENT and int(pm[0]) & PM_SWAP
    # More regions than one ioctl's vector holds: the calls are joined. (walk_end is the
    # kernel's: after a multi-pass walk it stays at the last pass's start.)
    regions = mm.pagemap_scan(p, p + n * P, category_anyof_mask=PAGE_IS_GUARD,
                              return_mask=PAGE_IS_GUARD)
    assert len(regions) == n // 2 and p < regions.walk_end <= p + n * P
    assert regions == [(p + i * P, p + (i + 1) * P, PAGE_IS_GUARD) for i in range(0, n, 2)]
    assert regions[-1] == (p + (n - 2) * P, p + (n - 1) * P, PAGE_IS_GUARD)
    few = mm.pagemap_scan(p, p + n * P, category_anyof_mask=PAGE_IS_GUARD,
                          return_mask=PAGE_IS_GUARD, max_pages=3)
    assert len(few) == 3
    one = mm.pagemap_scan(p, p + n * P, category_anyof_mask=PAGE_IS_GUARD,
                          return_mask=PAGE_IS_GUARD, vec_len=7)
    assert one == regions[:7] and one.walk_end == p + 14 * P   # the first region left out


def test_batch_reports_errors_per_call(mm):
    p = anon(mm, 2)
    results, _ = mm.batch([("madvise", p, P, MADV_GUARD_INSTALL),
                           ("munmap", p + 1, P),
                           ("mprotect", p + P, P, PROT_READ)])
    assert results.tolist() == [0, -errno.EINVAL, 0]
    with pytest.raises(ValueError):
        mm.batch([("fork",)])


def test_available():
    """available() is whether MADV_GUARD_INSTALL works, asked here of this process's own
    kernel through libc; False whenever the backend is turned off (PTENGINE_LIVE=0)."""
    import ctypes
    import mmap
    if not live.enabled():
        assert live.available() is False
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long)
    libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
    p = libc.mmap(None, P, mmap.PROT_READ | mmap.PROT_WRITE,
                  mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    try:
        works = libc.madvise(p, P, MADV_GUARD_INSTALL) == 0
    finally:
        libc.munmap(p, P)
    assert live.available() is works
