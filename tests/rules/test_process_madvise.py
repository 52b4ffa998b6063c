"""process_madvise() and the iovec rules, on both backends (issue 11, item 2).

The rules (mm/madvise.c vector_madvise(), lib/iov_iter.c __import_iovec()):
- flags other than 0, more than UIO_MAXIOV (1024) iovecs, or a length negative as an
  ssize_t are EINVAL before anything is advised;
- then, iovec by iovec, a range access_ok() refuses (base + length wraps or passes
  USER_PTR_MAX) is EFAULT, still before anything is advised; a single iovec has its length
  capped before that check;
- the lengths are cut so that they total at most MAX_RW_COUNT (0x7ffff000): only that
  much is advised, and later iovecs count as empty;
- the iovecs are then advised in order, each as madvise() takes it; the call returns the
  bytes of the iovecs done before the first error, or that error if none were done;
- the first iovec is examined even when empty (an unaligned one is EINVAL), later empty
  ones are skipped; with no bytes at all the call returns 0, whatever the advice.
"""
import errno

import pytest

from ptengine.constants import (MADV_GUARD_INSTALL, MAP_NORESERVE, PROT_READ, PROT_WRITE,
                                TASK_SIZE)

from .conftest import GUARD, NONE, P, errno_of

G = 1 << 30
MAX_RW_COUNT = 0x7FFFFFFF & ~(P - 1)      # INT_MAX & PAGE_MASK (include/linux/fs.h)
SIZE = 4 * G + 2 * P                      # the mapping; the page after it is a hole
INSTALL = MADV_GUARD_INSTALL
EINVAL, EFAULT, ENOMEM = errno.EINVAL, errno.EFAULT, errno.ENOMEM

# name: (iovecs as a function of the mapping's address p, expected result or -errno,
#        {page offset from p: pagemap bits afterwards}).
CASES = {
    "four_1GiB_capped_at_MAX_RW_COUNT": (
        lambda p: [(p + i * G, G) for i in range(4)], MAX_RW_COUNT,
        {0: GUARD, MAX_RW_COUNT - P: GUARD, MAX_RW_COUNT: NONE}),
    "capped_inside_an_unaligned_total": (
        lambda p: [(p, MAX_RW_COUNT - 0xfff), (p + 2 * G, 0x2000)], MAX_RW_COUNT,
        {2 * G: GUARD, 2 * G + P: NONE}),
    "one_iovec_capped_before_access_ok": (
        lambda p: [(p, TASK_SIZE - p + 1)], MAX_RW_COUNT, {MAX_RW_COUNT: NONE}),
    "one_iovec_of_2_47": (lambda p: [(p, 1 << 47)], MAX_RW_COUNT, {}),
    "second_iovec_ending_at_TASK_SIZE": (
        lambda p: [(p, P), (p, TASK_SIZE - p)], MAX_RW_COUNT, {}),
    "second_iovec_past_TASK_SIZE_efault": (
        lambda p: [(p, P), (p, TASK_SIZE - p + 1)], -EFAULT, {0: NONE}),
    "lengths_summing_past_SSIZE_MAX_efault": (
        lambda p: [(p, (1 << 63) - 1), (p, 1)], -EFAULT, {0: NONE}),
    "two_2_62_lengths_efault": (lambda p: [(p, 1 << 62), (p, 1 << 62)], -EFAULT, {}),
    "length_negative_as_ssize_t": (lambda p: [(p, 1 << 63)], -EINVAL, {}),
    "negative_length_second_einval_first": (
        lambda p: [(TASK_SIZE, P), (p, -P)], -EINVAL, {0: NONE}),
    "base_at_TASK_SIZE_efault": (lambda p: [(TASK_SIZE, P)], -EFAULT, {}),
    "negative_base_efault": (lambda p: [(-P, P)], -EFAULT, {}),
    "bad_base_after_MAX_RW_COUNT_still_efault": (
        lambda p: [(p, MAX_RW_COUNT), (TASK_SIZE, P)], -EFAULT, {0: NONE}),
    "unaligned_after_MAX_RW_COUNT_is_never_advised": (
        lambda p: [(p, MAX_RW_COUNT), (p + 1, P)], MAX_RW_COUNT, {}),
    "hole_after_MAX_RW_COUNT_is_never_advised": (
        lambda p: [(p, MAX_RW_COUNT), (p + SIZE, P)], MAX_RW_COUNT, {}),
    "1025_iovecs": (lambda p: [(p, P)] * 1025, -EINVAL, {0: NONE}),
    "1024_iovecs": (lambda p: [(p + (i % 4) * P, P) for i in range(1024)], 1024 * P,
                    {0: GUARD, 3 * P: GUARD, 4 * P: NONE}),
    "no_iovecs": (lambda p: [], 0, {}),
    "leading_empty_unaligned_einval": (lambda p: [(p + 1, 0), (p, P)], -EINVAL, {0: NONE}),
    "empty_unaligned_in_the_middle_skipped": (
        lambda p: [(p, P), (p + 1, 0), (p + P, P)], 2 * P, {0: GUARD, P: GUARD}),
    "leading_empty_aligned_then_empty_unaligned": (
        lambda p: [(p, 0), (p + 1, 0), (p, P)], P, {0: GUARD}),
    "only_empty_unaligned": (lambda p: [(p + 1, 0), (p + 3, 0)], 0, {}),
    "unaligned_in_the_middle_stops": (
        lambda p: [(p, P), (p + 1, P), (p + 2 * P, P)], P, {0: GUARD, 2 * P: NONE}),
    "unaligned_first_einval": (lambda p: [(p + 1, P), (p, P)], -EINVAL, {0: NONE}),
    "hole_in_the_middle_counts_bytes_not_pages": (
        lambda p: [(p, 1), (p + SIZE, P), (p + 2 * P, P)], 1, {0: GUARD, 2 * P: NONE}),
    "hole_first_enomem": (lambda p: [(p + SIZE, P), (p, P)], -ENOMEM, {0: NONE}),
    "failing_iovec_keeps_its_work_uncounted": (
        lambda p: [(p, P), (p + SIZE - P, 2 * P)], P, {0: GUARD, SIZE - P: GUARD}),
    "failing_first_iovec_keeps_its_work": (
        lambda p: [(p + SIZE - P, 2 * P), (p, P)], -ENOMEM, {SIZE - P: GUARD, 0: NONE}),
}


@pytest.mark.parametrize("case", CASES)
def test_process_madvise_iovec_rules(s, case):
    make, want, pages = CASES[case]
    p = s.map("anon", SIZE // P, PROT_READ | PROT_WRITE, at=0, extra=MAP_NORESERVE)
    try:
        got = s.mm.process_madvise(make(p), INSTALL)
    except OSError as e:
        got = -e.errno
    assert got == want
    for off, bits in pages.items():
        assert s.pm(p + off, 1) == [bits], hex(off)


@pytest.mark.parametrize("iovecs, advice, flags, want", [
    ([], 999, 0, 0),                      # no bytes: the advice is never looked at
    ([(0, 0)], 999, 0, 0),
    ([(0, P)], 999, 0, -EINVAL),
    ([], INSTALL, 1, -EINVAL),            # flags are checked first
])
def test_process_madvise_advice_and_flags(s, iovecs, advice, flags, want):
    assert (s.mm.process_madvise(iovecs, advice, flags) if want >= 0
            else -errno_of(s.mm.process_madvise, iovecs, advice, flags)) == want


@pytest.mark.parametrize("iovecs, exc", [
    ([(0, P, 0)], TypeError), ([P], TypeError), ([("0", P)], TypeError), (None, TypeError),
    ([(1 << 64, P)], OverflowError), ([(0, -(1 << 63) - 1)], OverflowError),
])
def test_process_madvise_bad_iovec_types(s, iovecs, exc):
    """Values that are not (addr, length) pairs of C integers are Python errors, as for
    the os module's functions; a negative length that fits is the kernel's EINVAL."""
    with pytest.raises(exc):
        s.mm.process_madvise(iovecs, INSTALL)
    assert errno_of(s.mm.process_madvise, [(0, -P)], INSTALL) == EINVAL
