"""Syscall argument conversion, as include/linux/syscalls.h's SYSCALL_DEFINEn casts them.

Shared by every syscall module: integers as the C ABI takes them, and the page-range
check most range syscalls start with."""
import errno
import operator

from .constants import PAGE_MASK, PAGE_SIZE
from .errors import raise_errno


def as_int(value, name="argument"):
    """Syscall arguments are integers; anything else is a TypeError, as for a C prototype."""
    if type(value) is int:
        return value
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}") from None


U64_MAX = (1 << 64) - 1


def as_ulong(value, name="argument"):
    """An `unsigned long` syscall argument: a negative value wraps as the C cast would
    (-4096 is 0xfffffffffffff000); one that does not fit in 64 bits is an OverflowError."""
    if type(value) is int and 0 <= value <= U64_MAX:
        return value
    v = as_int(value, name)
    if not -(1 << 63) <= v <= U64_MAX:
        raise OverflowError(f"{name} = {v:#x} does not fit in 64 bits")
    return v & U64_MAX


def as_cint(value, name="argument"):
    """An `int` syscall argument (madvise's advice, mlock2's flags): the kernel reads the
    low 32 bits of the register as a signed int, so 2**32 + 4 is 4. Values that do not fit
    in 64 bits at all are an OverflowError, as for as_ulong()."""
    v = as_ulong(value, name) & 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


def page_range(addr, length):
    """Validate (addr, length) as the range syscalls do: addr page aligned (EINVAL), length
    rounded up to pages, overflow EINVAL. Returns (start, end); end == start for len 0."""
    addr, length = as_int(addr, "addr"), as_int(length, "length")
    if addr < 0 or addr & ~PAGE_MASK or length < 0:
        raise_errno(errno.EINVAL)
    end = addr + ((length + PAGE_SIZE - 1) & PAGE_MASK)
    if end >= 1 << 64 or (length and end == addr):
        raise_errno(errno.EINVAL)
    return addr, end
