"""/proc/PID/{maps,smaps,status} text (fs/proc/task_mmu.c, fs/proc/array.c).

Rendered and parsed exactly as Linux 6.18 (x86-64) prints them.

Pure functions, no kernel access. The format was read from fs/proc/task_mmu.c (6.18 era) and
checked character for character against the host kernel (see tests/test_procfs.py, whose
fixtures were captured by probes/vmflags.c and probes/procfs_capture.c).

maps line layout (show_map_vma):
    start-end perms offset major:minor inode<pad>name
  * start/end: lower-case hex, zero-padded to at least 8 digits;
  * perms: r/w/x from VM_READ/VM_WRITE/VM_EXEC, then 's' if VM_MAYSHARE else 'p';
  * offset: vm_pgoff << 12 in hex, at least 8 digits -- only for VMAs with a file; anonymous VMAs
    print 00000000 whatever their vm_pgoff;
  * major:minor in hex, at least 2 digits each; inode in decimal (0 without a file);
  * then one space. If there is a name, the line is padded with spaces to column 72 and one more
    space is written before the name (so the name starts at column 73; if the prefix, with its
    trailing space, is already 72+ characters long, the name follows after two spaces). Without a
    name the line ends with that trailing space.
  * In a path, '\n' is escaped as the octal "\\012"; nothing else is escaped.
  * Name precedence: file (path, or "[anon_shmem:NAME]" for a named shmem VMA), special mapping
    name ([vdso] ...), "[heap]", "[stack]", "[anon:NAME]".
  * "[heap]": vm_start < brk and vm_end > start_brk (strict: an empty heap labels nothing).
    "[stack]": vm_start <= start_stack <= vm_end.

smaps adds fields formatted as label + number right-aligned in 8 columns + " kB".
"""
from __future__ import annotations

import dataclasses
import re
from typing import Iterable

from .. import constants as C

__all__ = [
    "MNEMONICS", "MNEMONIC_BITS", "vmflags_mnemonics", "decode_vmflags",
    "render_maps_line", "render_maps", "render_smaps", "render_smaps_rollup", "render_status",
    "parse_maps", "parse_smaps", "parse_status", "parse_vmflags",
    "MapsEntry", "FileRef", "STATUS_MM_FIELDS", "SMAPS_FIELDS",
]

PSS_SHIFT = 12

# Bit -> mnemonic, as in show_smap_vma_flags() (6.18, x86-64). Printed in bit order.
# 27 "sd" exists only with CONFIG_MEM_SOFT_DIRTY (off on the reference host); 32..35 are the
# x86 protection-key bits, which print nothing; 37 "ss" needs CONFIG_X86_USER_SHADOW_STACK (off
# on the host); those two are omitted unless asked for. Any other set bit without a mnemonic
# prints "??", as the kernel does.
MNEMONICS: dict[int, str] = {
    0: "rd", 1: "wr", 2: "ex", 3: "sh", 4: "mr", 5: "mw", 6: "me", 7: "ms",
    8: "gd", 9: "um", 10: "pf", 11: "gu", 12: "uw", 13: "lo", 14: "io", 15: "sr",
    16: "rr", 17: "dc", 18: "de", 19: "lf", 20: "ac", 21: "nr", 22: "ht", 23: "sf",
    24: "ar", 25: "wf", 26: "dd", 27: "sd", 28: "mm", 29: "hg", 30: "nh", 31: "mg",
    32: "", 33: "", 34: "", 35: "",
    37: "ss", 40: "dp", 41: "ui", 42: "sl",
}
MNEMONIC_BITS: dict[str, int] = {m: 1 << b for b, m in MNEMONICS.items() if m}

# Host defaults (Linux 6.18.44 test box): no CONFIG_MEM_SOFT_DIRTY, no user shadow stack.
DEFAULT_HIDDEN_BITS = frozenset({27, 37})


def vmflags_mnemonics(flags: int, *, show_soft_dirty: bool = False,
                      show_shadow_stack: bool = False) -> list[str]:
    """The mnemonics smaps prints for ``flags``, in the kernel's (bit) order."""
    if not isinstance(flags, int):
        raise TypeError("flags must be an int")
    hidden = set(DEFAULT_HIDDEN_BITS)
    if show_soft_dirty:
        hidden.discard(27)
    if show_shadow_stack:
        hidden.discard(37)
    out = []
    for bit in range(64):
        if not (flags >> bit) & 1:
            continue
        if bit in hidden:
            # Not configured on the reference host (the kernel defines the flag as 0 there, so it
            # can never be set); a simulator that sets it anyway gets the host's output.
            continue
        m = MNEMONICS.get(bit, "??")
        if m:
            out.append(m)
    return out


def decode_vmflags(mnemonics: Iterable[str]) -> int:
    """vm_flags bits for a list of mnemonics ("??" and unknown ones are ignored)."""
    flags = 0
    for m in mnemonics:
        flags |= MNEMONIC_BITS.get(m, 0)
    return flags


def parse_vmflags(line: str) -> int:
    """Decode a "VmFlags: rd wr ..." line (or just its value part)."""
    if line.startswith("VmFlags:"):
        line = line[len("VmFlags:"):]
    return decode_vmflags(line.split())


# --------------------------------------------------------------------------------------------
# maps

_NAME_COLUMN = 25 + 8 * 6 - 1   # seq_setwidth() in show_vma_header_prefix(): 72 on 64-bit


def _hex(v: int, width: int) -> str:
    return format(v, "x").rjust(width, "0")


def _escape_path(path: str) -> str:
    # seq_path(..., "\n") mangles only the newline, as a 3-digit octal escape.
    return path.replace("\n", "\\012")


def _file_display(file, anon_name):
    """Name text for a VMA with a file (or None)."""
    if anon_name is not None:
        return "[anon_shmem:%s]" % anon_name
    kind = getattr(file, "kind", "file") or "file"
    path = getattr(file, "path", "") or ""
    if kind == "memfd":
        if not path.startswith("/memfd:"):
            path = "/memfd:" + (path[len("memfd:"):] if path.startswith("memfd:") else path)
        return _escape_path(path) + " (deleted)"
    if kind == "shmem_anon":
        return "/dev/zero (deleted)"
    text = _escape_path(path)
    if getattr(file, "deleted", False):
        text += " (deleted)"
    return text


def _get(obj, name, default=None):
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _vma_name(vma, heap, stack, stack_is_start):
    file = _get(vma, "file")
    anon_name = _get(vma, "anon_name")
    if file is not None:
        return _file_display(file, anon_name)
    special = _get(vma, "special_name")
    if special:
        return special
    start, end = _get(vma, "start"), _get(vma, "end")
    if heap is not None:
        start_brk, brk = heap
        if start < brk and end > start_brk:
            return "[heap]"
    if stack is not None:
        if stack_is_start:
            if start == stack:
                return "[stack]"
        elif start <= stack <= end:
            return "[stack]"
    if anon_name is not None:
        return "[anon:%s]" % anon_name
    return None


def render_maps_line(vma, name: str | None = None) -> str:
    """One maps line (with its trailing newline) for ``vma`` with an already chosen ``name``."""
    start, end = _get(vma, "start"), _get(vma, "end")
    flags = _get(vma, "flags")
    for field, v in (("start", start), ("end", end), ("flags", flags)):
        if not isinstance(v, int):
            raise TypeError("VMA %s must be an int, got %r" % (field, type(v).__name__))
    file = _get(vma, "file")
    if file is not None:
        pgoff = _get(vma, "pgoff", 0) or 0
        offset = pgoff << C.PAGE_SHIFT
        major, minor = _get(file, "dev", (0, 0)) or (0, 0)
        ino = _get(file, "ino", 0) or 0
    else:
        offset, major, minor, ino = 0, 0, 0, 0
    perms = ("r" if flags & C.VM_READ else "-") + ("w" if flags & C.VM_WRITE else "-") + \
        ("x" if flags & C.VM_EXEC else "-") + ("s" if flags & C.VM_MAYSHARE else "p")
    prefix = "%s-%s %s %s %s:%s %d " % (_hex(start, 8), _hex(end, 8), perms, _hex(offset, 8),
                                        _hex(major, 2), _hex(minor, 2), ino)
    if name is None:
        return prefix + "\n"
    # seq_pad(): spaces up to the width (counted from the line start), then one ' '.
    return prefix.ljust(_NAME_COLUMN) + " " + name + "\n"


def render_maps(vmas, heap=None, stack=None) -> str:
    """The text of /proc/PID/maps for ``vmas`` (iterated in the given order).

    ``heap``: (start_brk, brk) or None. ``stack``: mm->start_stack (an address inside the stack
    VMA; a VMA whose start equals it is labelled and the VMA ending there is not) or None.
    VMAs may carry ``special_name`` (e.g. "[vdso]") used when they have no file.
    """
    vmas = list(vmas)
    stack_is_start = stack is not None and any(_get(v, "start") == stack for v in vmas)
    out = []
    for vma in vmas:
        out.append(render_maps_line(vma, _vma_name(vma, heap, stack, stack_is_start)))
    return "".join(out)


# --------------------------------------------------------------------------------------------
# smaps

# (label as printed, stats key, divisor kind) in kernel order, after the maps line.
SMAPS_FIELDS = (
    "Size", "KernelPageSize", "MMUPageSize", "Rss", "Pss", "Pss_Dirty", "Shared_Clean",
    "Shared_Dirty", "Private_Clean", "Private_Dirty", "Referenced", "Anonymous", "KSM",
    "LazyFree", "AnonHugePages", "ShmemPmdMapped", "FilePmdMapped", "Shared_Hugetlb",
    "Private_Hugetlb", "Swap", "SwapPss", "Locked",
)
# stats key (bytes, or bytes << PSS_SHIFT for *_x4096) behind each smaps field.
_SMAPS_KEYS = {
    "Rss": "rss", "Pss": "pss_x4096", "Pss_Dirty": "pss_dirty_x4096",
    "Pss_Anon": "pss_anon_x4096", "Pss_File": "pss_file_x4096", "Pss_Shmem": "pss_shmem_x4096",
    "Shared_Clean": "shared_clean", "Shared_Dirty": "shared_dirty",
    "Private_Clean": "private_clean", "Private_Dirty": "private_dirty",
    "Referenced": "referenced", "Anonymous": "anonymous", "KSM": "ksm", "LazyFree": "lazyfree",
    "AnonHugePages": "anon_huge", "ShmemPmdMapped": "shmem_thp", "FilePmdMapped": "file_thp",
    "Shared_Hugetlb": "shared_hugetlb", "Private_Hugetlb": "private_hugetlb", "Swap": "swap",
    "SwapPss": "swap_pss_x4096", "Locked": "pss_locked_x4096",
}


def _kb_line(label: str, nbytes: int, width: int = 8) -> str:
    # seq_put_decimal_ull_width(m, "Label:<spaces>", bytes >> 10, 8) + " kB\n";
    # all labels are padded so that label + number is 24 characters wide.
    return (label + ":").ljust(24 - width) + str(nbytes >> 10).rjust(width) + " kB\n"


def _stat(stats, key):
    v = stats.get(key, 0) if stats else 0
    if not isinstance(v, int):
        raise TypeError("stats[%r] must be an int" % key)
    return v


def _smap_counters(stats, *, rollup: bool, locked_bytes=None, locked_default_x4096=0):
    out = []
    out.append(_kb_line("Rss", _stat(stats, "rss")))
    out.append(_kb_line("Pss", _stat(stats, "pss_x4096") >> PSS_SHIFT))
    out.append(_kb_line("Pss_Dirty", _stat(stats, "pss_dirty_x4096") >> PSS_SHIFT))
    if rollup:
        out.append(_kb_line("Pss_Anon", _stat(stats, "pss_anon_x4096") >> PSS_SHIFT))
        out.append(_kb_line("Pss_File", _stat(stats, "pss_file_x4096") >> PSS_SHIFT))
        out.append(_kb_line("Pss_Shmem", _stat(stats, "pss_shmem_x4096") >> PSS_SHIFT))
    for label in ("Shared_Clean", "Shared_Dirty", "Private_Clean", "Private_Dirty",
                  "Referenced", "Anonymous", "KSM", "LazyFree", "AnonHugePages",
                  "ShmemPmdMapped", "FilePmdMapped", "Shared_Hugetlb"):
        out.append(_kb_line(label, _stat(stats, _SMAPS_KEYS[label])))
    out.append(_kb_line("Private_Hugetlb", _stat(stats, "private_hugetlb"), width=7))
    out.append(_kb_line("Swap", _stat(stats, "swap")))
    out.append(_kb_line("SwapPss", _stat(stats, "swap_pss_x4096") >> PSS_SHIFT))
    if locked_bytes is not None:
        locked = locked_bytes
    elif stats and "pss_locked_x4096" in stats:
        locked = _stat(stats, "pss_locked_x4096") >> PSS_SHIFT
    else:
        locked = locked_default_x4096 >> PSS_SHIFT
    out.append(_kb_line("Locked", locked))
    return out


def render_smaps(vma, stats=None, *, locked_bytes=None, thp_eligible=0, heap=None, stack=None,
                 protection_key=None, kernel_page_size=C.PAGE_SIZE, mmu_page_size=C.PAGE_SIZE,
                 show_soft_dirty=False, name=...) -> str:
    """One VMA's /proc/PID/smaps entry: the maps line, the counters, THPeligible, VmFlags.

    ``stats`` holds byte counts (keys: rss, pss_x4096, pss_dirty_x4096, shared_clean,
    shared_dirty, private_clean, private_dirty, referenced, anonymous, anon_huge, and optionally
    ksm, lazyfree, shmem_thp, file_thp, shared_hugetlb, private_hugetlb, swap, swap_pss_x4096,
    pss_locked_x4096); ``*_x4096`` values are bytes << 12 (the kernel's PSS fixed point).
    ``Locked`` is ``locked_bytes`` if given, else the PSS when the VMA has VM_LOCKED (as the
    kernel accumulates it), else 0. ``protection_key`` adds the ProtectionKey line (only on
    CPUs with PKU, not the reference host).
    """
    flags = _get(vma, "flags")
    if not isinstance(flags, int):
        raise TypeError("VMA flags must be an int")
    if name is ...:
        name = _vma_name(vma, heap, stack, False)
    out = [render_maps_line(vma, name)]
    size = _get(vma, "end") - _get(vma, "start")
    out.append(_kb_line("Size", size))
    out.append(_kb_line("KernelPageSize", kernel_page_size))
    out.append(_kb_line("MMUPageSize", mmu_page_size))
    locked_default = _stat(stats, "pss_x4096") if flags & C.VM_LOCKED else 0
    out.extend(_smap_counters(stats, rollup=False, locked_bytes=locked_bytes,
                              locked_default_x4096=locked_default))
    out.append("THPeligible:    %8u\n" % (1 if thp_eligible else 0))
    if protection_key is not None:
        out.append("ProtectionKey:  %8u\n" % protection_key)
    out.append("VmFlags: " + "".join(m + " " for m in
                                    vmflags_mnemonics(flags, show_soft_dirty=show_soft_dirty))
               + "\n")
    return "".join(out)


def render_smaps_rollup(start: int, end: int, stats=None) -> str:
    """/proc/PID/smaps_rollup: header spans first VMA start .. last VMA end, then the totals
    (with Pss_Anon/Pss_File/Pss_Shmem; Locked from stats["pss_locked_x4096"])."""
    head = "%s-%s ---p 00000000 00:00 0 " % (_hex(start, 8), _hex(end, 8))
    out = [head.ljust(_NAME_COLUMN) + " [rollup]\n"]
    out.extend(_smap_counters(stats, rollup=True))
    return "".join(out)


# --------------------------------------------------------------------------------------------
# status

# The mm part of /proc/PID/status (task_mem() + hugetlb_report_usage()), in order.
STATUS_MM_FIELDS = ("VmPeak", "VmSize", "VmLck", "VmPin", "VmHWM", "VmRSS", "RssAnon",
                    "RssFile", "RssShmem", "VmData", "VmStk", "VmExe", "VmLib", "VmPTE",
                    "VmSwap", "HugetlbPages")


def render_status(fields: dict) -> str:
    """The mm block of /proc/PID/status ("VmPeak:\\t    3396 kB" ...), values in kB.

    Missing fields print 0, except VmPeak defaults to VmSize and VmHWM to VmRSS; VmRSS defaults
    to RssAnon + RssFile + RssShmem. Keys not in STATUS_MM_FIELDS are ignored.
    """
    if not isinstance(fields, dict):
        raise TypeError("fields must be a dict")
    f = dict(fields)
    if "VmRSS" not in f:
        f["VmRSS"] = f.get("RssAnon", 0) + f.get("RssFile", 0) + f.get("RssShmem", 0)
    f.setdefault("VmPeak", max(f.get("VmSize", 0), 0))
    f.setdefault("VmHWM", f["VmRSS"])
    out = []
    for key in STATUS_MM_FIELDS:
        v = f.get(key, 0)
        if not isinstance(v, int):
            raise TypeError("status field %s must be an int" % key)
        out.append("%s:\t%8d kB\n" % (key, v))
    return "".join(out)


def parse_status(text: str, *, all_fields: bool = False) -> dict:
    """Parse /proc/PID/status. Returns {name: int kB} for every "... kB" line; with
    ``all_fields`` other lines are included too (int if the value is one integer, else str)."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        value = value.strip()
        if value.endswith(" kB"):
            try:
                out[key] = int(value[:-3])
                continue
            except ValueError:
                pass
        if all_fields:
            try:
                out[key] = int(value)
            except ValueError:
                out[key] = value
    return out


# --------------------------------------------------------------------------------------------
# parsing maps / smaps

@dataclasses.dataclass
class FileRef:
    """What a maps line tells about a VMA's file."""
    path: str
    dev: tuple = (0, 0)
    ino: int = 0
    deleted: bool = False
    kind: str = "file"            # "file", "memfd" or "shmem_anon"


@dataclasses.dataclass
class MapsEntry:
    """One parsed maps/smaps entry. Usable as a VMA for the render functions."""
    start: int
    end: int
    flags: int                    # vm_flags: from perms (maps) or VmFlags (smaps)
    pgoff: int                    # in pages (0 for anonymous VMAs, as maps shows)
    file: FileRef | None = None
    anon_name: str | None = None
    special_name: str | None = None   # "[heap]", "[stack]", "[vdso]", "[vsyscall]", ...
    name: str = ""                # the raw name column ("" if none)
    perms: str = ""
    offset: int = 0               # the offset column, bytes
    dev: tuple = (0, 0)
    ino: int = 0
    fields: dict = dataclasses.field(default_factory=dict)   # smaps: label -> kB
    vmflags: list = dataclasses.field(default_factory=list)  # smaps: mnemonics as printed
    thp_eligible: int | None = None
    protection_key: int | None = None

    @property
    def size(self) -> int:
        return self.end - self.start

    def stats(self) -> dict:
        """smaps counters as a render_smaps() stats dict (bytes / bytes << 12)."""
        st = {}
        for label, key in _SMAPS_KEYS.items():
            if label in self.fields:
                v = self.fields[label] << 10
                st[key] = v << PSS_SHIFT if key.endswith("_x4096") else v
        return st


_MAPS_RE = re.compile(
    r"^([0-9a-f]+)-([0-9a-f]+) ([r-][w-][x-][sp]) ([0-9a-f]+) ([0-9a-f]+):([0-9a-f]+) (\d+) ?(.*)$")


def _unescape_path(s: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def _parse_maps_line(line: str) -> MapsEntry:
    m = _MAPS_RE.match(line)
    if not m:
        raise ValueError("not a maps line: %r" % line)
    start, end = int(m.group(1), 16), int(m.group(2), 16)
    perms = m.group(3)
    offset = int(m.group(4), 16)
    dev = (int(m.group(5), 16), int(m.group(6), 16))
    ino = int(m.group(7))
    name = m.group(8).lstrip(" ")
    flags = 0
    if perms[0] == "r":
        flags |= C.VM_READ
    if perms[1] == "w":
        flags |= C.VM_WRITE
    if perms[2] == "x":
        flags |= C.VM_EXEC
    if perms[3] == "s":
        flags |= C.VM_MAYSHARE
    e = MapsEntry(start=start, end=end, flags=flags, pgoff=0, name=name, perms=perms,
                  offset=offset, dev=dev, ino=ino)
    has_file = ino != 0 or dev != (0, 0) or name.startswith("/")
    if name.startswith("[anon_shmem:") and name.endswith("]"):
        e.anon_name = name[len("[anon_shmem:"):-1]
        e.file = FileRef(path="/dev/zero", dev=dev, ino=ino, deleted=True, kind="shmem_anon")
    elif name.startswith("[anon:") and name.endswith("]") and not has_file:
        e.anon_name = name[len("[anon:"):-1]
    elif name.startswith("[") and name.endswith("]") and not has_file:
        e.special_name = name
    elif has_file:
        deleted = name.endswith(" (deleted)")
        path = name[:-len(" (deleted)")] if deleted else name
        path = _unescape_path(path)
        if path.startswith("/memfd:") and deleted:
            kind = "memfd"
        elif path == "/dev/zero" and deleted:
            kind = "shmem_anon"
        else:
            kind = "file"
        e.file = FileRef(path=path, dev=dev, ino=ino, deleted=deleted, kind=kind)
    if e.file is not None:
        e.pgoff = offset >> C.PAGE_SHIFT
    return e


def parse_maps(text: str) -> list[MapsEntry]:
    """Parse /proc/PID/maps text into MapsEntry records (flags from the perms column only:
    VM_READ/WRITE/EXEC and VM_MAYSHARE for 's')."""
    return [_parse_maps_line(l) for l in text.splitlines() if l.strip()]


def parse_smaps(text: str) -> list[MapsEntry]:
    """Parse /proc/PID/smaps text. Each record's ``flags`` is decoded from its VmFlags line
    (which carries rd/wr/ex/sh/mr/mw/me/ms and the rest); ``fields`` maps labels to kB."""
    out: list[MapsEntry] = []
    cur = None
    for line in text.splitlines():
        if not line:
            continue
        # A maps line starts with a lowercase hex address; every field label with a capital.
        if not line[0].isupper():
            cur = _parse_maps_line(line)
            out.append(cur)
            continue
        if cur is None:
            raise ValueError("smaps field before any maps line: %r" % line)
        if line.startswith("VmFlags:"):
            cur.vmflags = line[len("VmFlags:"):].split()
            cur.flags = decode_vmflags(cur.vmflags)
            continue
        key, _, rest = line.partition(":")
        words = rest.split()
        if not words or not words[0].isdigit():
            continue                # a text field: Android kernels print "Name: [anon:...]"
        val = int(words[0])
        if key == "THPeligible":
            cur.thp_eligible = val
        elif key == "ProtectionKey":
            cur.protection_key = val
        else:
            cur.fields[key] = val
    return out
