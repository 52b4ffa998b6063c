"""The batch row format (CALL_DTYPE): one row = one call.

The contract of /work/briefs/s4/dtype.md, written here only so that branch `runner` can
build arrays before branch `batch` (which owns this module and adds `calls()` and the
executors) is merged: take batch's version of this file on merge.
"""
import enum

import numpy as np

CALL_DTYPE = np.dtype([("op", "<u1"), ("flags", "<u1"), ("mm", "<u2"), ("ref", "<i4"),
                       ("a", "<u8", (6,))], align=True)          # itemsize 56


class CallOp(enum.IntEnum):
    MMAP = 1
    MUNMAP = 2
    MPROTECT = 3
    MADVISE = 4
    PROCESS_MADVISE = 5
    MREMAP = 6
    MLOCK = 7
    MUNLOCK = 8
    MLOCKALL = 9
    MUNLOCKALL = 10
    MSEAL = 11
    BRK = 12
    ANON_NAME = 13
    TOUCH = 23
    IOVEC = 41          # continuation row of a PROCESS_MADVISE: a[0] base, a[1] len


FLAG_REL = 0x3f         # bits 0-5 REL_A0..REL_A5: a[i] += result of row `ref` before the call
FLAG_TOLERATE = 0x40    # an error in this row does not stop a stop="error" batch
FLAG_RESTART = 0x80     # process_madvise: re-issue the rest after a short count
