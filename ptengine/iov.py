"""The iovec rules of lib/iov_iter.c, shared by both backends' process_madvise().

import_iovec() turns the caller's (base, length) pairs into the segments the kernel
iterates: it refuses what the kernel refuses before any advice is applied, and caps the
total at MAX_RW_COUNT as every vectored call does, so that the syscall's ssize_t result
cannot overflow. The simulator advises exactly these segments; the live backend uses them
to know which ranges a call can reach.
"""
import errno

from .constants import PAGE_MASK, TASK_SIZE, UIO_MAXIOV
from .errors import raise_errno

# include/linux/fs.h: the most any read/write-style call moves, INT_MAX & PAGE_MASK.
MAX_RW_COUNT = 0x7FFFFFFF & PAGE_MASK
# arch/x86: the highest address a user range may end at (USER_PTR_MAX = TASK_SIZE_MAX on a
# CPU without LAM, as on the reference machines).
USER_PTR_MAX = TASK_SIZE
SSIZE_MAX = (1 << 63) - 1


def access_ok(base, length):
    """x86-64 __access_ok() for a length only known at run time: base + length may neither
    wrap nor pass USER_PTR_MAX (integers here do not wrap, so a wrapped sum is too big)."""
    return base + length <= USER_PTR_MAX


def import_iovec(vec):
    """__import_iovec(): the segments [(base, length)] the kernel walks, for u64 pairs.

    EINVAL for more than UIO_MAXIOV pairs or a length negative as an ssize_t (checked for
    every pair first, as iovec_from_user() copies them); then, pair by pair, EFAULT for a
    range access_ok() refuses, and each length is cut so that the running total stays at
    most MAX_RW_COUNT (later pairs get length 0). A single pair takes the import_ubuf()
    path, which caps its length before access_ok() looks at it."""
    if len(vec) > UIO_MAXIOV or any(n > SSIZE_MAX for _, n in vec):
        raise_errno(errno.EINVAL)
    if len(vec) == 1:
        base, n = vec[0]
        vec = [(base, min(n, MAX_RW_COUNT))]
    out, total = [], 0
    append = out.append                 # (a process_madvise of 1,024 ranges runs this per range)
    for base, n in vec:
        if not access_ok(base, n):
            raise_errno(errno.EFAULT)
        if n > MAX_RW_COUNT - total:
            n = MAX_RW_COUNT - total
        total += n
        append((base, n))
    return out


def iterated(segments):
    """The segments vector_madvise() advises, in order, as the iov_iter hands them out:
    the first one always (while any bytes remain), after it only those of non-zero length
    (iov_iter_advance() steps over empty segments); a list."""
    if not sum(n for _, n in segments):
        return []
    # (The bytes run out only after the last segment that has any: no need to count.)
    return segments[:1] + [seg for seg in segments[1:] if seg[1]]
