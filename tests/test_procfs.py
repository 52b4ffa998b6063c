"""Tests for ptengine.proc.text: the renderers must reproduce real Linux 6.18 output exactly.

The SMAPS_BLOCKS / MAPS_DUMP / STATUS_FULL fixtures below were captured on the reference host by
probes/vmflags.c run under `setarch -R` (see probes/run_all.sh). Each renderer test builds the
VMA and its counters independently (flags from ptengine.constants, byte counts written by hand)
and checks the renderer output character for character against the captured text.
"""
import os
import sys
from types import SimpleNamespace as NS

import pytest

from ptengine import constants as C
from ptengine.proc import text as procfs

P = 4096
MAY = C.VM_MAYREAD | C.VM_MAYWRITE | C.VM_MAYEXEC
RW = C.VM_READ | C.VM_WRITE
PRIV_RW = RW | MAY | C.VM_ACCOUNT
SHARED_RW = RW | C.VM_SHARED | MAY | C.VM_MAYSHARE
FLAGS_FILE = NS(path="/tmp/ptprobe_flags2xXfIM", dev=(0xFE, 0), ino=2146465, deleted=False, kind="file")


def vma(start, npages=4, flags=PRIV_RW, pgoff=0, file=None, anon_name=None, **kw):
    return NS(start=start, end=start + npages * P, flags=flags, pgoff=pgoff, file=file,
              anon_name=anon_name, **kw)


def kb(n):
    return n * 1024


def x4096(nbytes):
    return nbytes << 12

# --- captured on the host by probes/vmflags.c (setarch -R), Linux 6.18.44 x86-64 ---
SMAPS_BLOCKS = {
    'private anon PROT_NONE': (
        '1000c0000000-1000c0004000 ---p 00000000 00:00 0 \n'
        'Size:                 16 kB\n'
        'KernelPageSize:        4 kB\n'
        'MMUPageSize:           4 kB\n'
        'Rss:                   0 kB\n'
        'Pss:                   0 kB\n'
        'Pss_Dirty:             0 kB\n'
        'Shared_Clean:          0 kB\n'
        'Shared_Dirty:          0 kB\n'
        'Private_Clean:         0 kB\n'
        'Private_Dirty:         0 kB\n'
        'Referenced:            0 kB\n'
        'Anonymous:             0 kB\n'
        'KSM:                   0 kB\n'
        'LazyFree:              0 kB\n'
        'AnonHugePages:         0 kB\n'
        'ShmemPmdMapped:        0 kB\n'
        'FilePmdMapped:         0 kB\n'
        'Shared_Hugetlb:        0 kB\n'
        'Private_Hugetlb:       0 kB\n'
        'Swap:                  0 kB\n'
        'SwapPss:               0 kB\n'
        'Locked:                0 kB\n'
        'THPeligible:           0\n'
        'VmFlags: mr mw me \n'
    ),
    'private anon RWX': (
        '100140000000-100140004000 rwxp 00000000 00:00 0 \n'
        'Size:                 16 kB\n'
        'KernelPageSize:        4 kB\n'
        'MMUPageSize:           4 kB\n'
        'Rss:                   0 kB\n'
        'Pss:                   0 kB\n'
        'Pss_Dirty:             0 kB\n'
        'Shared_Clean:          0 kB\n'
        'Shared_Dirty:          0 kB\n'
        'Private_Clean:         0 kB\n'
        'Private_Dirty:         0 kB\n'
        'Referenced:            0 kB\n'
        'Anonymous:             0 kB\n'
        'KSM:                   0 kB\n'
        'LazyFree:              0 kB\n'
        'AnonHugePages:         0 kB\n'
        'ShmemPmdMapped:        0 kB\n'
        'FilePmdMapped:         0 kB\n'
        'Shared_Hugetlb:        0 kB\n'
        'Private_Hugetlb:       0 kB\n'
        'Swap:                  0 kB\n'
        'SwapPss:               0 kB\n'
        'Locked:                0 kB\n'
        'THPeligible:           0\n'
        'VmFlags: rd wr ex mr mw me ac \n'
    ),
    'private anon RW: 2 pages written, 1 read (zero page)': (
        '100200000000-100200004000 rw-p 00000000 00:00 0 \n'
        'Size:                 16 kB\n'
        'KernelPageSize:        4 kB\n'
        'MMUPageSize:           4 kB\n'
        'Rss:                   8 kB\n'
        'Pss:                   8 kB\n'
        'Pss_Dirty:             8 kB\n'
        'Shared_Clean:          0 kB\n'
        'Shared_Dirty:          0 kB\n'
        'Private_Clean:         0 kB\n'
        'Private_Dirty:         8 kB\n'
        'Referenced:            8 kB\n'
        'Anonymous:             8 kB\n'
        'KSM:                   0 kB\n'
        'LazyFree:              0 kB\n'
        'AnonHugePages:         0 kB\n'
        'ShmemPmdMapped:        0 kB\n'
        'FilePmdMapped:         0 kB\n'
        'Shared_Hugetlb:        0 kB\n'
        'Private_Hugetlb:       0 kB\n'
        'Swap:                  0 kB\n'
        'SwapPss:               0 kB\n'
        'Locked:                0 kB\n'
        'THPeligible:           0\n'
        'VmFlags: rd wr mr mw me ac \n'
    ),
    'shared anon RW: 1 written, 1 read': (
        '100240000000-100240004000 rw-s 00000000 00:01 1073                       /dev/zero (deleted)\n'
        'Size:                 16 kB\n'
        'KernelPageSize:        4 kB\n'
        'MMUPageSize:           4 kB\n'
        'Rss:                   8 kB\n'
        'Pss:                   8 kB\n'
        'Pss_Dirty:             4 kB\n'
        'Shared_Clean:          0 kB\n'
        'Shared_Dirty:          0 kB\n'
        'Private_Clean:         4 kB\n'
        'Private_Dirty:         4 kB\n'
        'Referenced:            8 kB\n'
        'Anonymous:             0 kB\n'
        'KSM:                   0 kB\n'
        'LazyFree:              0 kB\n'
        'AnonHugePages:         0 kB\n'
        'ShmemPmdMapped:        0 kB\n'
        'FilePmdMapped:         0 kB\n'
        'Shared_Hugetlb:        0 kB\n'
        'Private_Hugetlb:       0 kB\n'
        'Swap:                  0 kB\n'
        'SwapPss:               0 kB\n'
        'Locked:                0 kB\n'
        'THPeligible:           0\n'
        'VmFlags: rd wr sh mr mw me ms \n'
    ),
    'MAP_GROWSDOWN': (
        '100300000000-100300004000 rw-p 00000000 00:00 0 \n'
        'Size:                 16 kB\n'
        'KernelPageSize:        4 kB\n'
        'MMUPageSize:           4 kB\n'
        'Rss:                   0 kB\n'
        'Pss:                   0 kB\n'
        'Pss_Dirty:             0 kB\n'
        'Shared_Clean:          0 kB\n'
        'Shared_Dirty:          0 kB\n'
        'Private_Clean:         0 kB\n'
        'Private_Dirty:         0 kB\n'
        'Referenced:            0 kB\n'
        'Anonymous:             0 kB\n'
        'KSM:                   0 kB\n'
        'LazyFree:              0 kB\n'
        'AnonHugePages:         0 kB\n'
        'ShmemPmdMapped:        0 kB\n'
        'FilePmdMapped:         0 kB\n'
        'Shared_Hugetlb:        0 kB\n'
        'Private_Hugetlb:       0 kB\n'
        'Swap:                  0 kB\n'
        'SwapPss:               0 kB\n'
        'Locked:                0 kB\n'
        'THPeligible:           0\n'
        'VmFlags: rd wr mr mw me gd ac \n'
    ),
    'private anon MAP_SYNC': (
        '100480000000-100480004000 rw-p 00000000 00:00 0 \n'
        'Size:                 16 kB\n'
        'KernelPageSize:        4 kB\n'
        'MMUPageSize:           4 kB\n'
        'Rss:                   0 kB\n'
        'Pss:                   0 kB\n'
        'Pss_Dirty:             0 kB\n'
        'Shared_Clean:          0 kB\n'
        'Shared_Dirty:          0 kB\n'
        'Private_Clean:         0 kB\n'
        'Private_Dirty:         0 kB\n'
        'Referenced:            0 kB\n'
        'Anonymous:             0 kB\n'
        'KSM:                   0 kB\n'
        'LazyFree:              0 kB\n'
        'AnonHugePages:         0 kB\n'
        'ShmemPmdMapped:        0 kB\n'
        'FilePmdMapped:         0 kB\n'
        'Shared_Hugetlb:        0 kB\n'
        'Private_Hugetlb:       0 kB\n'
        'Swap:                  0 kB\n'
        'SwapPss:               0 kB\n'
        'Locked:                0 kB\n'
        'THPeligible:           0\n'
        'VmFlags: rd wr mr mw me ac sf \n'
    ),
    'MAP_DROPPABLE': (
        '1004c0000000-1004c0004000 rw-p 00000000 00:00 0 \n'
        'Size:                 16 kB\n'
        'KernelPageSize:        4 kB\n'
        'MMUPageSize:           4 kB\n'
        'Rss:                   0 kB\n'
        'Pss:                   0 kB\n'
        'Pss_Dirty:             0 kB\n'
        'Shared_Clean:          0 kB\n'
        'Shared_Dirty:          0 kB\n'
        'Private_Clean:         0 kB\n'
        'Private_Dirty:         0 kB\n'
        'Referenced:            0 kB\n'
        'Anonymous:             0 kB\n'
        'KSM:                   0 kB\n'
        'LazyFree:              0 kB\n'
        'AnonHugePages:         0 kB\n'
        'ShmemPmdMapped:        0 kB\n'
        'FilePmdMapped:         0 kB\n'
        'Shared_Hugetlb:        0 kB\n'
        'Private_Hugetlb:       0 kB\n'
        'Swap:                  0 kB\n'
        'SwapPss:               0 kB\n'
        'Locked:                0 kB\n'
        'THPeligible:           0\n'
        'VmFlags: rd wr mr mw me nr wf dd dp \n'
    ),
    'mlock2(ONFAULT) + 1 page written': (
        '100500000000-100500004000 rw-p 00000000 00:00 0 \n'
        'Size:                 16 kB\n'
        'KernelPageSize:        4 kB\n'
        'MMUPageSize:           4 kB\n'
        'Rss:                   4 kB\n'
        'Pss:                   4 kB\n'
        'Pss_Dirty:             4 kB\n'
        'Shared_Clean:          0 kB\n'
        'Shared_Dirty:          0 kB\n'
        'Private_Clean:         0 kB\n'
        'Private_Dirty:         4 kB\n'
        'Referenced:            4 kB\n'
        'Anonymous:             4 kB\n'
        'KSM:                   0 kB\n'
        'LazyFree:              0 kB\n'
        'AnonHugePages:         0 kB\n'
        'ShmemPmdMapped:        0 kB\n'
        'FilePmdMapped:         0 kB\n'
        'Shared_Hugetlb:        0 kB\n'
        'Private_Hugetlb:       0 kB\n'
        'Swap:                  0 kB\n'
        'SwapPss:               0 kB\n'
        'Locked:                4 kB\n'
        'THPeligible:           0\n'
        'VmFlags: rd wr mr mw me lo lf ac \n'
    ),
    'madvise GUARD_INSTALL(1 page) (ret 0)': (
        '100780000000-100780004000 rw-p 00000000 00:00 0 \n'
        'Size:                 16 kB\n'
        'KernelPageSize:        4 kB\n'
        'MMUPageSize:           4 kB\n'
        'Rss:                   0 kB\n'
        'Pss:                   0 kB\n'
        'Pss_Dirty:             0 kB\n'
        'Shared_Clean:          0 kB\n'
        'Shared_Dirty:          0 kB\n'
        'Private_Clean:         0 kB\n'
        'Private_Dirty:         0 kB\n'
        'Referenced:            0 kB\n'
        'Anonymous:             0 kB\n'
        'KSM:                   0 kB\n'
        'LazyFree:              0 kB\n'
        'AnonHugePages:         0 kB\n'
        'ShmemPmdMapped:        0 kB\n'
        'FilePmdMapped:         0 kB\n'
        'Shared_Hugetlb:        0 kB\n'
        'Private_Hugetlb:       0 kB\n'
        'Swap:                  0 kB\n'
        'SwapPss:               0 kB\n'
        'Locked:                0 kB\n'
        'THPeligible:           0\n'
        'VmFlags: rd wr mr mw me gu ac \n'
    ),
    'many: WIPEONFORK DONTFORK HUGEPAGE DONTDUMP RANDOM mlock mseal': (
        '1008c0000000-1008c0004000 rw-p 00000000 00:00 0 \n'
        'Size:                 16 kB\n'
        'KernelPageSize:        4 kB\n'
        'MMUPageSize:           4 kB\n'
        'Rss:                  16 kB\n'
        'Pss:                  16 kB\n'
        'Pss_Dirty:            16 kB\n'
        'Shared_Clean:          0 kB\n'
        'Shared_Dirty:          0 kB\n'
        'Private_Clean:         0 kB\n'
        'Private_Dirty:        16 kB\n'
        'Referenced:           16 kB\n'
        'Anonymous:            16 kB\n'
        'KSM:                   0 kB\n'
        'LazyFree:              0 kB\n'
        'AnonHugePages:         0 kB\n'
        'ShmemPmdMapped:        0 kB\n'
        'FilePmdMapped:         0 kB\n'
        'Shared_Hugetlb:        0 kB\n'
        'Private_Hugetlb:       0 kB\n'
        'Swap:                  0 kB\n'
        'SwapPss:               0 kB\n'
        'Locked:               16 kB\n'
        'THPeligible:           0\n'
        'VmFlags: rd wr mr mw me lo rr dc ac wf dd hg sl \n'
    ),
    'shared file R (O_RDONLY)': (
        '100b40000000-100b40004000 r--s 00000000 fe:00 2146465                    /tmp/ptprobe_flags2xXfIM\n'
        'Size:                 16 kB\n'
        'KernelPageSize:        4 kB\n'
        'MMUPageSize:           4 kB\n'
        'Rss:                   0 kB\n'
        'Pss:                   0 kB\n'
        'Pss_Dirty:             0 kB\n'
        'Shared_Clean:          0 kB\n'
        'Shared_Dirty:          0 kB\n'
        'Private_Clean:         0 kB\n'
        'Private_Dirty:         0 kB\n'
        'Referenced:            0 kB\n'
        'Anonymous:             0 kB\n'
        'KSM:                   0 kB\n'
        'LazyFree:              0 kB\n'
        'AnonHugePages:         0 kB\n'
        'ShmemPmdMapped:        0 kB\n'
        'FilePmdMapped:         0 kB\n'
        'Shared_Hugetlb:        0 kB\n'
        'Private_Hugetlb:       0 kB\n'
        'Swap:                  0 kB\n'
        'SwapPss:               0 kB\n'
        'Locked:                0 kB\n'
        'THPeligible:           0\n'
        'VmFlags: rd mr me ms \n'
    ),
    'shared file RW mlock (populates)': (
        '100bc0000000-100bc0004000 rw-s 00000000 fe:00 2146465                    /tmp/ptprobe_flags2xXfIM\n'
        'Size:                 16 kB\n'
        'KernelPageSize:        4 kB\n'
        'MMUPageSize:           4 kB\n'
        'Rss:                  16 kB\n'
        'Pss:                  14 kB\n'
        'Pss_Dirty:             2 kB\n'
        'Shared_Clean:          0 kB\n'
        'Shared_Dirty:          4 kB\n'
        'Private_Clean:        12 kB\n'
        'Private_Dirty:         0 kB\n'
        'Referenced:           16 kB\n'
        'Anonymous:             0 kB\n'
        'KSM:                   0 kB\n'
        'LazyFree:              0 kB\n'
        'AnonHugePages:         0 kB\n'
        'ShmemPmdMapped:        0 kB\n'
        'FilePmdMapped:         0 kB\n'
        'Shared_Hugetlb:        0 kB\n'
        'Private_Hugetlb:       0 kB\n'
        'Swap:                  0 kB\n'
        'SwapPss:               0 kB\n'
        'Locked:               14 kB\n'
        'THPeligible:           0\n'
        'VmFlags: rd wr sh mr mw me ms lo \n'
    ),
    'private file RW offset 0x12345 pages (beyond EOF)': (
        '100c00000000-100c00004000 rw-p 12345000 fe:00 2146465                    /tmp/ptprobe_flags2xXfIM\n'
        'Size:                 16 kB\n'
        'KernelPageSize:        4 kB\n'
        'MMUPageSize:           4 kB\n'
        'Rss:                   0 kB\n'
        'Pss:                   0 kB\n'
        'Pss_Dirty:             0 kB\n'
        'Shared_Clean:          0 kB\n'
        'Shared_Dirty:          0 kB\n'
        'Private_Clean:         0 kB\n'
        'Private_Dirty:         0 kB\n'
        'Referenced:            0 kB\n'
        'Anonymous:             0 kB\n'
        'KSM:                   0 kB\n'
        'LazyFree:              0 kB\n'
        'AnonHugePages:         0 kB\n'
        'ShmemPmdMapped:        0 kB\n'
        'FilePmdMapped:         0 kB\n'
        'Shared_Hugetlb:        0 kB\n'
        'Private_Hugetlb:       0 kB\n'
        'Swap:                  0 kB\n'
        'SwapPss:               0 kB\n'
        'Locked:                0 kB\n'
        'THPeligible:           0\n'
        'VmFlags: rd wr mr mw me ac \n'
    ),
    'shared file R, path with a newline': (
        '100cc0000000-100cc0004000 r--s 00000000 fe:00 2146514                    /tmp/pt_nl\\012name\n'
        'Size:                 16 kB\n'
        'KernelPageSize:        4 kB\n'
        'MMUPageSize:           4 kB\n'
        'Rss:                   0 kB\n'
        'Pss:                   0 kB\n'
        'Pss_Dirty:             0 kB\n'
        'Shared_Clean:          0 kB\n'
        'Shared_Dirty:          0 kB\n'
        'Private_Clean:         0 kB\n'
        'Private_Dirty:         0 kB\n'
        'Referenced:            0 kB\n'
        'Anonymous:             0 kB\n'
        'KSM:                   0 kB\n'
        'LazyFree:              0 kB\n'
        'AnonHugePages:         0 kB\n'
        'ShmemPmdMapped:        0 kB\n'
        'FilePmdMapped:         0 kB\n'
        'Shared_Hugetlb:        0 kB\n'
        'Private_Hugetlb:       0 kB\n'
        'Swap:                  0 kB\n'
        'SwapPss:               0 kB\n'
        'Locked:                0 kB\n'
        'THPeligible:           0\n'
        'VmFlags: rd sh mr mw me ms \n'
    ),
    'memfd private RW offset 4P: 1 written 1 read': (
        '100d40000000-100d40004000 rw-p 00004000 00:01 1075                       /memfd:ptmemfd (deleted)\n'
        'Size:                 16 kB\n'
        'KernelPageSize:        4 kB\n'
        'MMUPageSize:           4 kB\n'
        'Rss:                   8 kB\n'
        'Pss:                   8 kB\n'
        'Pss_Dirty:             4 kB\n'
        'Shared_Clean:          0 kB\n'
        'Shared_Dirty:          0 kB\n'
        'Private_Clean:         4 kB\n'
        'Private_Dirty:         4 kB\n'
        'Referenced:            8 kB\n'
        'Anonymous:             4 kB\n'
        'KSM:                   0 kB\n'
        'LazyFree:              0 kB\n'
        'AnonHugePages:         0 kB\n'
        'ShmemPmdMapped:        0 kB\n'
        'FilePmdMapped:         0 kB\n'
        'Shared_Hugetlb:        0 kB\n'
        'Private_Hugetlb:       0 kB\n'
        'Swap:                  0 kB\n'
        'SwapPss:               0 kB\n'
        'Locked:                0 kB\n'
        'THPeligible:           0\n'
        'VmFlags: rd wr mr mw me ac \n'
    ),
}

MAPS_DUMP = (
    '100040000000-100040004000 rw-p 00000000 00:00 0 \n'
    '100080000000-100080004000 r--p 00000000 00:00 0 \n'
    '1000c0000000-1000c0004000 ---p 00000000 00:00 0 \n'
    '100100000000-100100004000 r-xp 00000000 00:00 0 \n'
    '100140000000-100140004000 rwxp 00000000 00:00 0 \n'
    '100180000000-100180004000 rw-p 00000000 00:00 0 \n'
    '1001c0000000-1001c0004000 r--p 00000000 00:00 0 \n'
    '100200000000-100200004000 rw-p 00000000 00:00 0 \n'
    '100240000000-100240004000 rw-s 00000000 00:01 1073                       /dev/zero (deleted)\n'
    '100280000000-100280004000 r--s 00000000 00:01 1074                       /dev/zero (deleted)\n'
    '1002c0000000-1002c0004000 rw-p 00000000 00:00 0 \n'
    '100300000000-100300004000 rw-p 00000000 00:00 0 \n'
    '100340000000-100340004000 rw-p 00000000 00:00 0 \n'
    '100380000000-100380004000 r--p 00000000 00:00 0 \n'
    '1003c0000000-1003c0004000 rw-p 00000000 00:00 0 \n'
    '100400000000-100400004000 rw-p 00000000 00:00 0 \n'
    '100440000000-100440004000 r--p 00000000 00:00 0 \n'
    '100480000000-100480004000 rw-p 00000000 00:00 0 \n'
    '1004c0000000-1004c0004000 rw-p 00000000 00:00 0 \n'
    '100500000000-100500004000 rw-p 00000000 00:00 0 \n'
    '100540000000-100540004000 rw-p 00000000 00:00 0 \n'
    '100580000000-100580004000 rw-p 00000000 00:00 0 \n'
    '1005c0000000-1005c0004000 rw-p 00000000 00:00 0 \n'
    '100600000000-100600004000 rw-p 00000000 00:00 0 \n'
    '100640000000-100640004000 rw-p 00000000 00:00 0 \n'
    '100680000000-100680004000 rw-p 00000000 00:00 0 \n'
    '1006c0000000-1006c0004000 rw-p 00000000 00:00 0 \n'
    '100700000000-100700004000 rw-p 00000000 00:00 0 \n'
    '100740000000-100740004000 rw-p 00000000 00:00 0 \n'
    '100780000000-100780004000 rw-p 00000000 00:00 0 \n'
    '1007c0000000-1007c0004000 rw-p 00000000 00:00 0 \n'
    '100800000000-100800004000 rw-p 00000000 00:00 0 \n'
    '100840000000-100840004000 rw-p 00000000 00:00 0 \n'
    '100880000000-100880004000 rw-p 00000000 00:00 0 \n'
    '1008c0000000-1008c0004000 rw-p 00000000 00:00 0 \n'
    '100900000000-100900004000 rw-p 00000000 00:00 0 \n'
    '100940000000-100940004000 rw-p 00000000 00:00 0 \n'
    '100980000000-100980004000 rw-p 00000000 fe:00 2146465                    /tmp/ptprobe_flags2xXfIM (deleted)\n'
    '1009c0000000-1009c0004000 r--p 00000000 fe:00 2146465                    /tmp/ptprobe_flags2xXfIM (deleted)\n'
    '100a00000000-100a00004000 r--p 00000000 fe:00 2146465                    /tmp/ptprobe_flags2xXfIM (deleted)\n'
    '100a40000000-100a40004000 rw-p 00000000 fe:00 2146465                    /tmp/ptprobe_flags2xXfIM (deleted)\n'
    '100a80000000-100a80004000 r-xp 00000000 fe:00 2146465                    /tmp/ptprobe_flags2xXfIM (deleted)\n'
    '100ac0000000-100ac0004000 rw-s 00008000 fe:00 2146465                    /tmp/ptprobe_flags2xXfIM (deleted)\n'
    '100b00000000-100b00004000 r--s 00000000 fe:00 2146465                    /tmp/ptprobe_flags2xXfIM (deleted)\n'
    '100b40000000-100b40004000 r--s 00000000 fe:00 2146465                    /tmp/ptprobe_flags2xXfIM (deleted)\n'
    '100b80000000-100b80004000 rw-s 00000000 fe:00 2146465                    /tmp/ptprobe_flags2xXfIM (deleted)\n'
    '100bc0000000-100bc0004000 rw-s 00000000 fe:00 2146465                    /tmp/ptprobe_flags2xXfIM (deleted)\n'
    '100c00000000-100c00004000 rw-p 12345000 fe:00 2146465                    /tmp/ptprobe_flags2xXfIM (deleted)\n'
    '100c40000000-100c40004000 r--s 00000000 fe:00 2146481                    /tmp/ptprobe_delSlWOpA (deleted)\n'
    '100c80000000-100c80004000 r--s 00000000 fe:00 2146497                    /tmp/pt probe sp\\ace (deleted)\n'
    '100cc0000000-100cc0004000 r--s 00000000 fe:00 2146514                    /tmp/pt_nl\\012name (deleted)\n'
    '100d00000000-100d00004000 rw-s 00000000 00:01 1075                       /memfd:ptmemfd (deleted)\n'
    '100d40000000-100d40004000 rw-p 00004000 00:01 1075                       /memfd:ptmemfd (deleted)\n'
    '100d80000000-100d80004000 r--s 00000000 00:01 1076                       /memfd: (deleted)\n'
    '100dc0000000-100dc0004000 rw-s 00000000 00:1b 2                          /dev/shm/ptprobe_shm (deleted)\n'
    '100e00000000-100e00004000 rw-p 00000000 00:06 4                          /dev/zero\n'
    '100e40000000-100e40004000 rw-s 00000000 00:01 1077                       /dev/zero (deleted)\n'
    '555555554000-555555555000 r--p 00000000 fe:00 2146530                    /tmp/vmflags\n'
    '555555555000-555555558000 r-xp 00001000 fe:00 2146530                    /tmp/vmflags\n'
    '555555558000-555555559000 r--p 00004000 fe:00 2146530                    /tmp/vmflags\n'
    '555555559000-55555555a000 r--p 00004000 fe:00 2146530                    /tmp/vmflags\n'
    '55555555a000-55555555b000 rw-p 00005000 fe:00 2146530                    /tmp/vmflags\n'
    '55555555b000-55555557c000 rw-p 00000000 00:00 0                          [heap]\n'
    '7ffff7dd2000-7ffff7dd5000 rw-p 00000000 00:00 0 \n'
    '7ffff7dd5000-7ffff7dfb000 r--p 00000000 fe:00 339380                     /usr/lib/x86_64-linux-gnu/libc.so.6\n'
    '7ffff7dfb000-7ffff7f51000 r-xp 00026000 fe:00 339380                     /usr/lib/x86_64-linux-gnu/libc.so.6\n'
    '7ffff7f51000-7ffff7fa4000 r--p 0017c000 fe:00 339380                     /usr/lib/x86_64-linux-gnu/libc.so.6\n'
    '7ffff7fa4000-7ffff7fa8000 r--p 001cf000 fe:00 339380                     /usr/lib/x86_64-linux-gnu/libc.so.6\n'
    '7ffff7fa8000-7ffff7faa000 rw-p 001d3000 fe:00 339380                     /usr/lib/x86_64-linux-gnu/libc.so.6\n'
    '7ffff7faa000-7ffff7fb7000 rw-p 00000000 00:00 0 \n'
    '7ffff7fc0000-7ffff7fc2000 rw-p 00000000 00:00 0 \n'
    '7ffff7fc2000-7ffff7fc6000 r--p 00000000 00:00 0                          [vvar]\n'
    '7ffff7fc6000-7ffff7fc8000 r--p 00000000 00:00 0                          [vvar_vclock]\n'
    '7ffff7fc8000-7ffff7fca000 r-xp 00000000 00:00 0                          [vdso]\n'
    '7ffff7fca000-7ffff7fcb000 r--p 00000000 fe:00 338944                     /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\n'
    '7ffff7fcb000-7ffff7ff1000 r-xp 00001000 fe:00 338944                     /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\n'
    '7ffff7ff1000-7ffff7ffb000 r--p 00027000 fe:00 338944                     /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\n'
    '7ffff7ffb000-7ffff7ffd000 r--p 00031000 fe:00 338944                     /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\n'
    '7ffff7ffd000-7ffff7fff000 rw-p 00033000 fe:00 338944                     /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\n'
    '7ffffffde000-7ffffffff000 rw-p 00000000 00:00 0                          [stack]\n'
    'ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n'
)

STATUS_FULL = (
    'Name:\tvmflags\n'
    'Umask:\t0022\n'
    'State:\tR (running)\n'
    'Tgid:\t5664\n'
    'Ngid:\t0\n'
    'Pid:\t5664\n'
    'PPid:\t5656\n'
    'TracerPid:\t0\n'
    'Uid:\t0\t0\t0\t0\n'
    'Gid:\t0\t0\t0\t0\n'
    'FDSize:\t256\n'
    'Groups:\t \n'
    'NStgid:\t5664\n'
    'NSpid:\t5664\n'
    'NSpgid:\t5656\n'
    'NSsid:\t3104\n'
    'Kthread:\t0\n'
    'VmPeak:\t    3396 kB\n'
    'VmSize:\t    3396 kB\n'
    'VmLck:\t      80 kB\n'
    'VmPin:\t       0 kB\n'
    'VmHWM:\t    1768 kB\n'
    'VmRSS:\t    1768 kB\n'
    'RssAnon:\t     180 kB\n'
    'RssFile:\t    1568 kB\n'
    'RssShmem:\t      20 kB\n'
    'VmData:\t     752 kB\n'
    'VmStk:\t     148 kB\n'
    'VmExe:\t      12 kB\n'
    'VmLib:\t    1560 kB\n'
    'VmPTE:\t     164 kB\n'
    'VmSwap:\t       0 kB\n'
    'HugetlbPages:\t       0 kB\n'
    'CoreDumping:\t0\n'
    'THP_enabled:\t1\n'
    'untag_mask:\t0xffffffffffffffff\n'
    'Threads:\t1\n'
    'SigQ:\t0/96365\n'
    'SigPnd:\t0000000000000000\n'
    'ShdPnd:\t0000000000000000\n'
    'SigBlk:\t0000000000000000\n'
    'SigIgn:\t0000000000000000\n'
    'SigCgt:\t0000000000000000\n'
    'CapInh:\t0000000000000000\n'
    'CapPrm:\t000001fffeffffff\n'
    'CapEff:\t000001fffeffffff\n'
    'CapBnd:\t000001fffeffffff\n'
    'CapAmb:\t0000000000000000\n'
    'NoNewPrivs:\t0\n'
    'Seccomp:\t0\n'
    'Seccomp_filters:\t0\n'
    'Speculation_Store_Bypass:\tvulnerable\n'
    'SpeculationIndirectBranch:\talways enabled\n'
    'Cpus_allowed:\t3\n'
    'Cpus_allowed_list:\t0-1\n'
    'Mems_allowed:\t00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000001\n'
    'Mems_allowed_list:\t0\n'
    'voluntary_ctxt_switches:\t2\n'
    'nonvoluntary_ctxt_switches:\t3\n'
)



# label -> (vma, stats, render_smaps kwargs)
SMAPS_CASES = {
    "private anon PROT_NONE": (vma(0x1000C0000000, flags=MAY), {}, {}),
    "private anon RWX": (vma(0x100140000000, flags=PRIV_RW | C.VM_EXEC), {}, {}),
    "private anon RW: 2 pages written, 1 read (zero page)": (
        vma(0x100200000000),
        dict(rss=kb(8), pss_x4096=x4096(kb(8)), pss_dirty_x4096=x4096(kb(8)),
             private_dirty=kb(8), referenced=kb(8), anonymous=kb(8)), {}),
    "shared anon RW: 1 written, 1 read": (
        vma(0x100240000000, flags=SHARED_RW,
            file=NS(path="/dev/zero", dev=(0, 1), ino=1073, deleted=True, kind="shmem_anon")),
        dict(rss=kb(8), pss_x4096=x4096(kb(8)), pss_dirty_x4096=x4096(kb(4)),
             private_clean=kb(4), private_dirty=kb(4), referenced=kb(8)), {}),
    "MAP_GROWSDOWN": (vma(0x100300000000, flags=PRIV_RW | C.VM_GROWSDOWN), {}, {}),
    "private anon MAP_SYNC": (vma(0x100480000000, flags=PRIV_RW | C.VM_SYNC), {}, {}),
    "MAP_DROPPABLE": (vma(0x1004C0000000, flags=RW | MAY | C.VM_NORESERVE | C.VM_WIPEONFORK
                          | C.VM_DONTDUMP | C.VM_DROPPABLE), {}, {}),
    "mlock2(ONFAULT) + 1 page written": (
        vma(0x100500000000, flags=PRIV_RW | C.VM_LOCKED | C.VM_LOCKONFAULT),
        dict(rss=kb(4), pss_x4096=x4096(kb(4)), pss_dirty_x4096=x4096(kb(4)),
             private_dirty=kb(4), referenced=kb(4), anonymous=kb(4)), {}),
    "madvise GUARD_INSTALL(1 page) (ret 0)": (
        vma(0x100780000000, flags=PRIV_RW | C.VM_MAYBE_GUARD), {}, {}),
    "many: WIPEONFORK DONTFORK HUGEPAGE DONTDUMP RANDOM mlock mseal": (
        vma(0x1008C0000000, flags=PRIV_RW | C.VM_WIPEONFORK | C.VM_DONTCOPY | C.VM_HUGEPAGE
            | C.VM_DONTDUMP | C.VM_RAND_READ | C.VM_LOCKED | C.VM_SEALED),
        dict(rss=kb(16), pss_x4096=x4096(kb(16)), pss_dirty_x4096=x4096(kb(16)),
             private_dirty=kb(16), referenced=kb(16), anonymous=kb(16)), {}),
    "shared file R (O_RDONLY)": (
        vma(0x100B40000000, flags=C.VM_READ | C.VM_MAYREAD | C.VM_MAYEXEC | C.VM_MAYSHARE,
            file=FLAGS_FILE), {}, {}),
    "shared file RW mlock (populates)": (
        vma(0x100BC0000000, flags=SHARED_RW | C.VM_LOCKED, file=FLAGS_FILE),
        # page 0 is also mapped by another VMA: PSS 12 kB + 4/2 kB
        dict(rss=kb(16), pss_x4096=x4096(kb(14)), pss_dirty_x4096=x4096(kb(2)),
             shared_dirty=kb(4), private_clean=kb(12), referenced=kb(16)), {}),
    "private file RW offset 0x12345 pages (beyond EOF)": (
        vma(0x100C00000000, pgoff=0x12345, file=FLAGS_FILE), {}, {}),
    "shared file R, path with a newline": (
        vma(0x100CC0000000, flags=C.VM_READ | C.VM_SHARED | MAY | C.VM_MAYSHARE,
            file=NS(path="/tmp/pt_nl\nname", dev=(0xFE, 0), ino=2146514, deleted=False,
                    kind="file")), {}, {}),
    "memfd private RW offset 4P: 1 written 1 read": (
        vma(0x100D40000000, pgoff=4,
            file=NS(path="ptmemfd", dev=(0, 1), ino=1075, deleted=True, kind="memfd")),
        dict(rss=kb(8), pss_x4096=x4096(kb(8)), pss_dirty_x4096=x4096(kb(4)),
             private_clean=kb(4), private_dirty=kb(4), referenced=kb(8), anonymous=kb(4)), {}),
}


def test_all_fixtures_have_a_case():
    assert set(SMAPS_CASES) == set(SMAPS_BLOCKS)


@pytest.mark.parametrize("label", sorted(SMAPS_CASES))
def test_render_smaps_matches_host(label):
    v, stats, kw = SMAPS_CASES[label]
    assert procfs.render_smaps(v, stats, **kw) == SMAPS_BLOCKS[label]


@pytest.mark.parametrize("label", sorted(SMAPS_CASES))
def test_render_maps_line_matches_host(label):
    v, _, _ = SMAPS_CASES[label]
    assert procfs.render_maps([v]) == SMAPS_BLOCKS[label].splitlines(keepends=True)[0]


@pytest.mark.parametrize("label", sorted(SMAPS_BLOCKS))
def test_parse_smaps_then_render_roundtrip(label):
    text = SMAPS_BLOCKS[label]
    (rec,) = procfs.parse_smaps(text)
    assert procfs.render_smaps(rec, rec.stats(), thp_eligible=rec.thp_eligible) == text


@pytest.mark.parametrize("label", sorted(SMAPS_CASES))
def test_parse_smaps_decodes_flags(label):
    v, stats, _ = SMAPS_CASES[label]
    (rec,) = procfs.parse_smaps(SMAPS_BLOCKS[label])
    assert rec.flags == v.flags
    assert (rec.start, rec.end) == (v.start, v.end)
    if v.file is not None:
        assert rec.pgoff == v.pgoff
        assert rec.file.ino == v.file.ino and rec.file.dev == v.file.dev
        assert rec.file.kind == v.file.kind and rec.file.deleted == v.file.deleted
    else:
        assert rec.file is None
    for key, val in stats.items():
        assert rec.stats().get(key, 0) == val, key


def test_maps_dump_roundtrip():
    recs = procfs.parse_maps(MAPS_DUMP)
    assert procfs.render_maps(recs) == MAPS_DUMP
    assert len(recs) == MAPS_DUMP.count("\n")


def test_maps_dump_special_lines_from_scratch():
    heap = (0x55555555B000, 0x55555557C000)
    start_stack = 0x7FFFFFFFE7E0
    libc = NS(path="/usr/lib/x86_64-linux-gnu/libc.so.6", dev=(0xFE, 0), ino=339380,
              deleted=False, kind="file")
    vmas = [
        NS(start=0x55555555B000, end=0x55555557C000, flags=PRIV_RW, pgoff=0, file=None,
           anon_name=None),
        NS(start=0x7FFFF7DD2000, end=0x7FFFF7DD5000, flags=PRIV_RW, pgoff=0, file=None,
           anon_name=None),
        NS(start=0x7FFFF7DFB000, end=0x7FFFF7F51000, flags=C.VM_READ | C.VM_EXEC | MAY,
           pgoff=0x26, file=libc, anon_name=None),
        NS(start=0x7FFFF7FC8000, end=0x7FFFF7FCA000, flags=C.VM_READ | C.VM_EXEC, pgoff=0,
           file=None, anon_name=None, special_name="[vdso]"),
        NS(start=0x7FFFFFFDE000, end=0x7FFFFFFFF000, flags=PRIV_RW | C.VM_GROWSDOWN, pgoff=0,
           file=None, anon_name=None),
        NS(start=0xFFFFFFFFFF600000, end=0xFFFFFFFFFF601000, flags=C.VM_EXEC, pgoff=0,
           file=None, anon_name=None, special_name="[vsyscall]"),
    ]
    want = [l for l in MAPS_DUMP.splitlines(keepends=True)
            if l.startswith(("55555555b000", "7ffff7dd2000", "7ffff7dfb000", "7ffff7fc8000",
                             "7ffffffde000", "ffffffffff600000"))]
    assert procfs.render_maps(vmas, heap=heap, stack=start_stack) == "".join(want)


def test_heap_label_is_strict():
    # vm_start < brk and vm_end > start_brk: a VMA ending at start_brk is not the heap
    bss = NS(start=0x4CB000, end=0x4D0000, flags=PRIV_RW, pgoff=0, file=None, anon_name=None)
    heap = NS(start=0x4D0000, end=0x4F2000, flags=PRIV_RW, pgoff=0, file=None, anon_name=None)
    text = procfs.render_maps([bss, heap], heap=(0x4D0000, 0x4F2000))
    assert text == ("004cb000-004d0000 rw-p 00000000 00:00 0 \n"
                    "004d0000-004f2000 rw-p 00000000 00:00 0"
                    + " " * 34 + "[heap]\n")
    # an empty heap labels nothing
    assert "[heap]" not in procfs.render_maps([heap], heap=(0x4D0000, 0x4D0000))


def test_stack_label_by_vma_start():
    a = NS(start=0x7FFFFFFDD000, end=0x7FFFFFFDE000, flags=PRIV_RW, pgoff=0, file=None,
           anon_name=None)
    s = NS(start=0x7FFFFFFDE000, end=0x7FFFFFFFF000, flags=PRIV_RW | C.VM_GROWSDOWN, pgoff=0,
           file=None, anon_name=None)
    text = procfs.render_maps([a, s], stack=0x7FFFFFFDE000)
    assert text.count("[stack]") == 1 and text.splitlines()[1].endswith("[stack]")


def test_anon_names():
    v = NS(start=0x10000, end=0x11000, flags=PRIV_RW, pgoff=0, file=None, anon_name="buf 1")
    assert procfs.render_maps([v]) == "00010000-00011000 rw-p 00000000 00:00 0" + " " * 34 + "[anon:buf 1]\n"
    sh = NS(start=0x10000, end=0x11000, flags=SHARED_RW, pgoff=0, anon_name="ring",
            file=NS(path="/dev/zero", dev=(0, 1), ino=7, deleted=True, kind="shmem_anon"))
    assert procfs.render_maps([sh]).endswith(" [anon_shmem:ring]\n")
    # heap/stack win over an anon name
    assert procfs.render_maps([v], heap=(0x10000, 0x11000)).endswith("[heap]\n")


def test_long_prefix_gets_no_padding():
    # prefix (with its trailing space) = 72 characters: no padding, then one more space
    f = NS(path="/x", dev=(0x103, 0x123456), ino=12345678901234567890, deleted=False, kind="file")
    v = NS(start=0x7FFFF7DFB000, end=0x7FFFF7F51000, flags=PRIV_RW, pgoff=0, file=f,
           anon_name=None)
    line = procfs.render_maps([v])
    assert line == "7ffff7dfb000-7ffff7f51000 rw-p 00000000 103:123456 12345678901234567890  /x\n"


def test_vmflags_order_and_hidden_bits():
    assert procfs.vmflags_mnemonics(C.VM_READ | C.VM_MAYBE_GUARD | C.VM_LOCKED | C.VM_UFFD_WP
                                    | C.VM_UFFD_MISSING | C.VM_PFNMAP) == \
        ["rd", "um", "pf", "gu", "uw", "lo"]
    assert procfs.vmflags_mnemonics(C.VM_SEALED | C.VM_DROPPABLE | C.VM_UFFD_MINOR) == \
        ["dp", "ui", "sl"]
    # no CONFIG_MEM_SOFT_DIRTY on the host: "sd" is never printed unless asked for
    assert procfs.vmflags_mnemonics(C.VM_SOFTDIRTY | C.VM_READ) == ["rd"]
    assert procfs.vmflags_mnemonics(1 << 38) == ["??"]
    assert procfs.vmflags_mnemonics(C.VM_SOFTDIRTY, show_soft_dirty=True) == ["sd"]
    # protection-key bits print nothing
    assert procfs.vmflags_mnemonics(1 << 32 | C.VM_READ) == ["rd"]
    assert procfs.decode_vmflags("rd wr mr mw me gu ac sl".split()) == \
        PRIV_RW | C.VM_MAYBE_GUARD | C.VM_SEALED


def test_status_render_and_parse():
    parsed = procfs.parse_status(STATUS_FULL)
    assert parsed["VmSize"] == 3396 and parsed["VmPTE"] == 164 and parsed["RssShmem"] == 20
    block = "".join(l + "\n" for l in STATUS_FULL.splitlines()
                    if l.split(":")[0] in procfs.STATUS_MM_FIELDS)
    assert procfs.render_status(parsed) == block
    assert procfs.parse_status(procfs.render_status(parsed)) == \
        {k: parsed[k] for k in procfs.STATUS_MM_FIELDS}
    full = procfs.parse_status(STATUS_FULL, all_fields=True)
    assert full["Name"] == "vmflags" and full["Tgid"] == 5664


def test_status_defaults():
    text = procfs.render_status({"VmSize": 8, "RssAnon": 4})
    p = procfs.parse_status(text)
    assert p["VmPeak"] == 8 and p["VmRSS"] == 4 and p["VmHWM"] == 4 and p["VmPTE"] == 0
    assert text.startswith("VmPeak:\t       8 kB\nVmSize:\t       8 kB\n")


def test_rollup_format():
    text = procfs.render_smaps_rollup(0x400000, 0x7FFFFFFFF000,
                                      dict(rss=kb(12), pss_x4096=x4096(kb(12)),
                                           pss_anon_x4096=x4096(kb(8))))
    lines = text.splitlines()
    assert lines[0] == "00400000-7ffffffff000 ---p 00000000 00:00 0" + " " * 30 + "[rollup]"
    assert lines[1:7] == ["Rss:                  12 kB", "Pss:                  12 kB",
                          "Pss_Dirty:             0 kB", "Pss_Anon:              8 kB",
                          "Pss_File:              0 kB", "Pss_Shmem:             0 kB"]


def test_locked_override_and_types():
    v = vma(0x100000000000)
    text = procfs.render_smaps(v, {"rss": kb(4)}, locked_bytes=kb(4), thp_eligible=1)
    assert "Locked:                4 kB\n" in text and "THPeligible:           1\n" in text
    with pytest.raises(TypeError):
        procfs.render_smaps(NS(start=0, end=P, flags="rw", pgoff=0, file=None, anon_name=None))
    with pytest.raises(TypeError):
        procfs.render_status({"VmSize": "1"})
    with pytest.raises(ValueError):
        procfs.parse_maps("garbage line\n")


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="needs Linux /proc")
def test_live_self_smaps_roundtrip():
    with open("/proc/self/smaps") as f:
        text = f.read()
    recs = procfs.parse_smaps(text)
    blocks, cur = [], []
    for line in text.splitlines(keepends=True):
        cur.append(line)
        if line.startswith("VmFlags:"):
            blocks.append("".join(cur))
            cur = []
    assert len(blocks) == len(recs)
    for rec, block in zip(recs, blocks):
        out = procfs.render_smaps(rec, rec.stats(), thp_eligible=rec.thp_eligible,
                                  protection_key=rec.protection_key,
                                  kernel_page_size=rec.fields["KernelPageSize"] << 10,
                                  mmu_page_size=rec.fields["MMUPageSize"] << 10,
                                  name=rec.name or None)
        assert out == block


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs Linux /proc")
def test_live_self_maps_roundtrip():
    with open("/proc/self/maps") as f:
        text = f.read()
    assert procfs.render_maps(procfs.parse_maps(text)) == text
