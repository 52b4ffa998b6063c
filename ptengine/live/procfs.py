"""Reading a live server's /proc files: VMAs from smaps, status, pagemap and PAGEMAP_SCAN
(the reading side of fs/proc/task_mmu.c).

Everything here runs in the client, against /proc/<server pid>/..., and never in the
server, so reading the address space does not change it.
"""
import ctypes
import fcntl
import os
import re
import struct
from dataclasses import dataclass, field

import numpy as np

from ..constants import PAGE_SHIFT, PAGE_SIZE, PAGEMAP_SCAN, PROT_EXEC, PROT_READ, PROT_WRITE
from ..constants import VM_EXEC, VM_READ, VM_WRITE
from ..errors import syscall_error

# smaps "VmFlags" mnemonics and the vm_flags bit each stands for (fs/proc/task_mmu.c,
# x86-64, 6.18 with VM_MAYBE_GUARD). Architecture-specific ones for other machines omitted.
VMFLAG_BITS = {
    "rd": 0, "wr": 1, "ex": 2, "sh": 3, "mr": 4, "mw": 5, "me": 6, "ms": 7,
    "gd": 8, "um": 9, "pf": 10, "gu": 11, "uw": 12, "lo": 13, "io": 14, "sr": 15,
    "rr": 16, "dc": 17, "de": 18, "lf": 19, "ac": 20, "nr": 21, "ht": 22, "sf": 23,
    "ar": 24, "wf": 25, "dd": 26, "sd": 27, "mm": 28, "hg": 29, "nh": 30, "mg": 31,
    "ss": 37, "dp": 40, "ui": 41, "sl": 42,
}

_HEADER = re.compile(
    r"^([0-9a-f]+)-([0-9a-f]+) ([r-][w-][x-][sp]) ([0-9a-f]+) ([0-9a-f]+):([0-9a-f]+) (\d+)"
    r"(?: +(.*))?$")
_ANON_NAME = re.compile(r"^\[anon(?:_shmem)?:(.*)\]$")
GATE = "[vsyscall]"   # the gate area: listed in maps, but not a VMA of the mm


@dataclass(frozen=True)
class LiveVMA:
    """One VMA of a live process, as /proc/PID/smaps describes it."""
    start: int
    end: int
    flags: int                 # vm_flags bits, from the VmFlags mnemonics
    pgoff: int                 # the file offset in pages (for anon: as the kernel shows it)
    file: object               # the LiveFile mapped, else the mapped path, else None
    name: str                  # the pathname column of maps, verbatim ("" if none)
    anon_name: object          # the anon VMA name (PR_SET_VMA_ANON_NAME), else None
    perms: str                 # "rw-p" and so on
    dev: tuple                 # (major, minor)
    inode: int
    vmflags: tuple = ()        # the VmFlags mnemonics, in the kernel's order
    stats: dict = field(default_factory=dict, compare=False, repr=False)  # smaps kB fields

    @property
    def size(self):
        return self.end - self.start

    @property
    def prot(self):
        return ((PROT_READ if self.flags & VM_READ else 0)
                | (PROT_WRITE if self.flags & VM_WRITE else 0)
                | (PROT_EXEC if self.flags & VM_EXEC else 0))

    def __contains__(self, addr):
        return self.start <= addr < self.end


def _perm_flags(perms):
    """vm_flags implied by a maps permission column (for maps-only parsing)."""
    return ((VM_READ if perms[0] == "r" else 0) | (VM_WRITE if perms[1] == "w" else 0)
            | (VM_EXEC if perms[2] == "x" else 0))


def parse(text, resolve_file=lambda dev, inode, path: None):
    """VMAs from the text of maps or smaps (VmFlags only in smaps). The gate area is left
    out, as it is not in the mm's VMA tree. resolve_file(dev, inode, path) may turn a mapped
    file into the caller's file object."""
    vmas, cur = [], None

    def finish():
        if cur is not None and cur["name"] != GATE:
            vmas.append(LiveVMA(**cur))

    for line in text.splitlines():
        m = _HEADER.match(line)
        if m:
            finish()
            start, end, perms, off, major, minor, inode, path = m.groups()
            path = path or ""
            dev, inode = (int(major, 16), int(minor, 16)), int(inode)
            anon = _ANON_NAME.match(path)
            mapped = inode != 0 and not path.startswith("[")
            cur = dict(start=int(start, 16), end=int(end, 16), flags=_perm_flags(perms),
                       pgoff=int(off, 16) >> PAGE_SHIFT,
                       file=(resolve_file(dev, inode, path) or path) if mapped else None,
                       name=path, anon_name=anon.group(1) if anon else None, perms=perms,
                       dev=dev, inode=inode, vmflags=(), stats={})
        elif cur is not None and line.startswith("VmFlags:"):
            words = tuple(line.split()[1:])
            cur["vmflags"] = words
            cur["flags"] = sum(1 << VMFLAG_BITS[w] for w in set(words) if w in VMFLAG_BITS)
        elif cur is not None:
            key, _, value = line.partition(":")
            parts = value.split()
            if len(parts) == 2 and parts[1] == "kB":
                cur["stats"][key] = int(parts[0])
    finish()
    return vmas


def status(text):
    """The numeric fields of /proc/PID/status (kB fields in kB, like the file)."""
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        parts = value.split()
        if parts and parts[0].isdigit() and (len(parts) == 1 or parts[1:] == ["kB"]):
            out[key] = int(parts[0])
    return out


def pagemap(fd, addr, size):
    """Entries of /proc/PID/pagemap for the pages spanning [addr, addr + size)."""
    first = addr >> PAGE_SHIFT
    count = ((addr + size + PAGE_SIZE - 1) >> PAGE_SHIFT) - first if size else 0
    chunks, want, off = [], count * 8, first * 8
    while want:
        data = os.pread(fd, min(want, 1 << 24), off)
        if not data:
            break
        chunks.append(data)
        want -= len(data)
        off += len(data)
    return np.frombuffer(b"".join(chunks), dtype="<u8").astype(np.uint64)


class ScanResult(list):
    """PAGEMAP_SCAN regions as (start, end, categories); .walk_end is the kernel's walk_end.

    Note (6.18): the kernel walks in passes of at most 512 regions; when a scan needs more
    than one pass and ends without filling the vector, walk_end is left at the start of the
    last pass rather than at `end`, although every region was reported.
    """
    walk_end = 0


_SCAN_ARG = struct.Struct("<12Q")
_SCAN_VEC = 4096    # regions per ioctl; longer results take several calls, joined here


def pagemap_scan(fd, start, end, *, flags=0, category_inverted=0, category_mask=0,
                 category_anyof_mask=0, return_mask=0, max_pages=0, vec_len=None):
    """Run the PAGEMAP_SCAN ioctl on an open pagemap file. With vec_len, once, with a
    vector of that many regions; without, as many times as it takes to cover [start, end)
    (or max_pages pages), joining regions that the calls split."""
    single = vec_len is not None
    vec_len = vec_len if single else _SCAN_VEC
    vec = (ctypes.c_uint64 * (3 * max(vec_len, 1)))()
    arg = bytearray(_SCAN_ARG.size)
    out = ScanResult()
    walk, left = start, max_pages
    while True:
        _SCAN_ARG.pack_into(arg, 0, _SCAN_ARG.size, flags, walk, end, 0, ctypes.addressof(vec),
                            vec_len, left, category_inverted, category_mask,
                            category_anyof_mask, return_mask)
        try:
            n = fcntl.ioctl(fd, PAGEMAP_SCAN, arg, True)
        except OSError as e:
            raise syscall_error(e.errno) from None
        walk_end = _SCAN_ARG.unpack(arg)[4]
        for i in range(n):
            s, e, cats = vec[3 * i], vec[3 * i + 1], vec[3 * i + 2]
            if out and s < out[-1][1]:      # reported by the previous call already
                s = out[-1][1]
                if s >= e:
                    continue
            if out and out[-1][1] == s and out[-1][2] == cats:
                out[-1] = (out[-1][0], e, cats)
            else:
                out.append((s, e, cats))
            if max_pages:
                left -= (e - s) >> PAGE_SHIFT
        out.walk_end = walk_end
        if (single or n < vec_len or walk_end >= end or (max_pages and left <= 0)
                or walk_end == walk):
            return out
        walk = walk_end     # the vector was full: walk_end is exact, go on from there
