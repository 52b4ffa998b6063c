"""How a call is counted: its label and mmap lock mode (mm/madvise.c:get_lock_mode()).

The one classification of calls both backends' batch counters (batch.pyx, live/process.py)
and workloads.metrics count by; it sits below them all (constants and errors only), so the
workloads package, which imports the backends, is not imported by them.
"""
from . import constants as C
from .errors import ERRNO_NAMES

# mm/madvise.c (6.18), get_lock_mode()/madvise_need_mmap_write(): these advice values run
# under the mmap read lock (or a per-VMA read lock); every other advice may change
# vm_flags and takes the mmap write lock. HWPOISON/SOFT_OFFLINE take no mmap lock.
READ_LOCKED_ADVICE = frozenset({
    C.MADV_REMOVE, C.MADV_WILLNEED, C.MADV_DONTNEED, C.MADV_DONTNEED_LOCKED, C.MADV_FREE,
    C.MADV_COLD, C.MADV_PAGEOUT, C.MADV_POPULATE_READ, C.MADV_POPULATE_WRITE,
    C.MADV_COLLAPSE, C.MADV_GUARD_INSTALL, C.MADV_GUARD_REMOVE,
})
UNLOCKED_ADVICE = frozenset({C.MADV_HWPOISON, C.MADV_SOFT_OFFLINE})

# Calls that always take the mmap write lock: they create, split, merge or re-flag VMAs.
# prctl(PR_SET_VMA_ANON_NAME) is set_anon_name; fork's dup_mmap() write-locks the parent.
WRITE_LOCKED_CALLS = ("mmap", "munmap", "mprotect", "mremap", "brk", "mlock", "munlock",
                      "mlockall", "munlockall", "mseal", "set_anon_name", "fork", "exit")
# UFFDIO_POISON installs markers under the mmap read lock.
READ_LOCKED_CALLS = ("install_poison",)

ADVICE_NAMES = {getattr(C, n): n[len("MADV_"):] for n in dir(C) if n.startswith("MADV_")}


def lock_mode(name, args):
    """'write', 'read' or 'none': how the kernel takes the mmap lock for this call."""
    if name in ("madvise", "process_madvise"):
        advice = args[-1]
        if advice in READ_LOCKED_ADVICE:
            return "read"
        return "none" if advice in UNLOCKED_ADVICE else "write"
    return "read" if name in READ_LOCKED_CALLS else "write"


def call_kind(name, advice=None):
    """(label, lock mode) under which a call is counted: "madvise(GUARD_INSTALL)" for the
    advised calls (by their advice), the name for the others."""
    if name in ("madvise", "process_madvise"):
        return f"{name}({ADVICE_NAMES.get(advice, advice)})", lock_mode(name, (advice,))
    return name, lock_mode(name, ())


def error_label(name, err):
    """How a failed call is counted: "set_anon_name: EINVAL"."""
    return f"{name}: {ERRNO_NAMES.get(err, err)}"
