"""Address-space listings in (fs/proc/task_mmu.c's output, read back), a simulated MM out.

Three listings describe a process's VMAs, and `parse()` reads each into the records
procfs.MapsEntry already defines (start, end, perms, offset, dev, ino, name; file,
special_name, anon_name; for smaps also flags from VmFlags and the kB fields):

  * /proc/PID/maps, from any architecture: a 32-bit process prints 8-digit addresses
    (fs/proc/task_mmu.c:show_vma_header_prefix() pads to 8, not 16);
  * /proc/PID/smaps, whose VmFlags line gives the exact vm_flags;
  * gdb's `info proc mappings` (gdb 12+: Start, End, Size, Offset, Perms, objfile), which has
    no device or inode columns.

`build_mm()` turns records into an MM of a System: each VMA inserted as the listing shows
it, files looked up by path in a `FileTable` (one inode per path, sized to cover what is
mapped of it), the kernel's special mappings rebuilt with the flags the kernel gives them,
and brk and the stack start taken from [heap] and [stack]. What a maps line cannot show is
inferred, and the inference is stated where it is made (vm_flags_of(), _needs_anon_vma()).
"""
import re

from ..constants import (PAGE_SIZE, VM_ACCESS_FLAGS, VM_ACCOUNT, VM_DONTEXPAND, VM_LOCKED,
                         VM_MAYEXEC, VM_MAYREAD, VM_MAYSHARE, VM_MAYWRITE, VM_READ,
                         VM_SHARED, VM_WRITE)
from ..exec.layout import STACK_FLAGS, VDSO_FLAGS, VVAR_FLAGS, SpecialVMA
from ..fs.files import SHMEM_DEV, File
from ..proc import text as procfs
from ..system import System
from ..mm.mm_types import VMA, AnonVma
from ..mm.vma import anon_vma_prepare

GATE = "[vsyscall]"      # the x86-64 gate area: a maps line, but not a VMA of the mm
# do_brk_flags(): VM_DATA_DEFAULT_FLAGS | VM_ACCOUNT (x86-64 without READ_IMPLIES_EXEC).
BRK_FLAGS = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC | VM_ACCOUNT
SPECIAL_FLAGS = {"[vvar]": VVAR_FLAGS, "[vvar_vclock]": VVAR_FLAGS, "[vdso]": VDSO_FLAGS}

_GDB_LINE = re.compile(r"^\s*0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)"
                       r"(?:\s+([r-][w-][x-][sp]))?\s*(.*)$")


# --- parsing -------------------------------------------------------------------------------
def parse(text):
    """The records of a maps, smaps or gdb `info proc mappings` listing, in its order."""
    if not isinstance(text, str):
        raise TypeError("text must be str")
    if "Start Addr" in text or _GDB_LINE.match(text.lstrip("\n").split("\n", 1)[0]):
        return parse_gdb(text)
    if re.search(r"^VmFlags:", text, re.M):
        return procfs.parse_smaps(text)
    return procfs.parse_maps(text)


def parse_gdb(text):
    """gdb `info proc mappings`: the lines after its header, as maps records (device and
    inode 0: gdb does not print them). A listing without the Perms column (gdb < 12) is
    refused: the permissions cannot be guessed."""
    lines = []
    for line in text.splitlines():
        m = _GDB_LINE.match(line)
        if not m:
            continue                     # "process N", "Mapped address spaces:", headers
        start, end, _size, offset, perms, name = m.groups()
        if perms is None:
            raise ValueError(f"gdb listing without a Perms column (gdb < 12): {line!r}")
        lines.append(f"{start}-{end} {perms} {int(offset, 16):08x} 00:00 0 {name}".rstrip())
    if not lines:
        raise ValueError("no mappings in the gdb listing")
    return procfs.parse_maps("\n".join(lines))


def read(path):
    """parse() of a file."""
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        return parse(f.read())


# --- files ---------------------------------------------------------------------------------
class FileTable:
    """The files of one reconstructed process tree, by path: every mapping of a path refers
    to one inode, whose size covers every byte that is mapped of it (cover()), so the
    program's libraries need not exist here. With `host=True`, a path that exists on this
    host gets its device, inode number and size (at least) from it, so maps lines match the
    kernel's when the listing came from this machine."""

    def __init__(self, system, host=True):
        self.system = system
        self.host = host
        self.inodes = {}

    def inode(self, path, dev=None, ino=None):
        """The inode for `path`, created on first use. A regular file is one inode per
        path; shmem names are one per (path, inode number), since every memfd_create() and
        every shared anonymous mmap makes a new one: /memfd:NAME and /dev/zero."""
        kind = "file"
        if path.startswith("/memfd:"):
            kind = "memfd"
        elif path == "/dev/zero":
            kind = "shmem_anon"
        key = path if kind == "file" else (path, ino)
        node = self.inodes.get(key)
        if node is not None:
            return node
        if kind == "file" and self.host:
            # System.open(): the host file's size, device and inode number, and the same
            # inode System.execve() mapped the program and its interpreter from.
            node = self.system.open(path).inode
            if ino:
                node.dev, node.ino = tuple(dev), ino     # the listing's numbers win
            self.inodes[key] = node
            return node
        if dev is None:
            dev = self.system.profile.root_dev if kind == "file" else SHMEM_DEV
        node = self.system.new_inode(kind, path, tuple(dev), ino or None)
        self.inodes[key] = node
        return node

    def cover(self, path, end, dev=None, ino=None):
        """Grow the file at `path` so that bytes up to `end` exist (whole pages)."""
        node = self.inode(path, dev, ino)
        node.size = max(node.size, -(-end // PAGE_SIZE) * PAGE_SIZE)
        return node

    def open(self, node, writable=True, deleted=False):
        """An open file description of inode `node` (O_RDWR or O_RDONLY)."""
        f = TracedFile(node, True, writable)
        f.unlinked = deleted and node.kind == "file"
        return f

    def unlink(self, path):
        """unlink(2) of `path`: mappings of its inode now show "PATH (deleted)", and the
        next open of the path is another file."""
        node = self.inodes.pop(path, None)
        node = self.system._paths.pop(path, None) or node
        if node is not None:
            node.unlinked = True


class TracedFile(File):
    """An open file whose name may have been unlinked (the listing said "(deleted)", or
    the log unlinked it): maps shows "PATH (deleted)"."""

    @property
    def deleted(self):
        return self.unlinked or getattr(self.inode, "unlinked", False) or \
            self.inode.kind != "file"


# --- building ------------------------------------------------------------------------------
def vm_flags_of(entry):
    """vm_flags for a record. smaps gives them (VmFlags). From maps alone: the permissions,
    VM_MAY* as mmap sets them for a private mapping (mm/mmap.c:do_mmap()), VM_ACCOUNT for
    private writable memory (accountable_mapping()); a shared mapping ('s') is
    VM_SHARED|VM_MAYWRITE only when writable now (a file opened O_RDONLY loses both, and
    a read-only shared mapping is far more often that than a writable one made read-only).
    What maps cannot show (VM_ACCOUNT on memory made read-only after it was written, as
    RELRO is; VM_NORESERVE, VM_DONTDUMP, ...) is missing: feed smaps where it matters."""
    if entry.vmflags:
        return entry.flags
    name = entry.special_name
    if name in SPECIAL_FLAGS:
        return SPECIAL_FLAGS[name]
    if name == "[stack]":
        return STACK_FLAGS | (entry.flags & VM_ACCESS_FLAGS)
    if name == "[heap]":
        return BRK_FLAGS | (entry.flags & VM_ACCESS_FLAGS)
    flags = entry.flags & VM_ACCESS_FLAGS | VM_MAYREAD | VM_MAYEXEC
    if entry.flags & VM_MAYSHARE:
        flags |= VM_MAYSHARE
        if flags & VM_WRITE:
            flags |= VM_SHARED | VM_MAYWRITE
    else:
        flags |= VM_MAYWRITE
        if flags & VM_WRITE:
            flags |= VM_ACCOUNT
    if name is not None:
        flags |= VM_DONTEXPAND          # install_special_mapping() VMAs never grow
    return flags


def _needs_anon_vma(entry, flags):
    """Whether the VMA has an anon_vma (it had a private page written, or was made a guard
    region). smaps says so by its anonymous pages. From maps alone: every private writable
    VMA is taken to have been written, and nothing else (a PROT_NONE guard never is)."""
    if flags & VM_SHARED or entry.flags & VM_MAYSHARE:
        return False
    if entry.vmflags:
        return entry.fields.get("Anonymous", 0) > 0 or "gu" in entry.vmflags
    return bool(flags & VM_WRITE)


def _vma(entry, files):
    flags = vm_flags_of(entry)
    if entry.special_name is not None and entry.special_name not in ("[heap]", "[stack]"):
        return SpecialVMA(entry.start, entry.end, flags, entry.special_name)
    file = None
    pgoff = entry.start // PAGE_SIZE
    if entry.file is not None:
        ref = entry.file
        node = files.cover(ref.path, entry.offset + entry.size,
                           ref.dev if ref.ino else None, ref.ino)
        file = files.open(node, writable=bool(flags & VM_MAYWRITE), deleted=ref.deleted)
        pgoff = entry.offset // PAGE_SIZE
    vma = VMA(entry.start, entry.end, flags, pgoff, file)
    vma.anon_name = entry.anon_name
    return vma


def build_mm(entries, system=None, *, files=None, start_brk=None, **spawn_options):
    """An MM of `system` (a new System if None) holding the records' VMAs. `files` is the
    FileTable to take files from (a new one on the system if None). The break starts at
    [heap], else at `start_brk`, else right after the lowest mapped (undeleted) file's last
    VMA and the anonymous VMA after it (the executable and its bss, where binfmt_elf puts the break);
    [stack] sets the stack start. The gate line ([vsyscall]) is not a VMA: it becomes the
    mm's gate_vma, which maps() prints last (get_gate_vma())."""
    if system is None:
        # A listing that shows [anon:NAME] lines came from a kernel with
        # CONFIG_ANON_VMA_NAME (an Android one, say): its names go on merging as they did.
        named = any(e.anon_name for e in entries)
        system = System(**({"anon_vma_name": True} if named else {}))
    files = files if files is not None else FileTable(system)
    mm = system.spawn(**spawn_options)
    gate = [e for e in entries if e.special_name == GATE]
    if gate:
        mm.gate_vma = SpecialVMA(gate[0].start, gate[0].end, vm_flags_of(gate[0]), GATE)
    entries = [e for e in entries if e.special_name != GATE]
    vmas = []
    for e in entries:
        vma = _vma(e, files)
        mm.vma_tree.insert(vma)
        vmas.append(vma)
        if vma.flags & VM_LOCKED:
            mm.locked_vm += (vma.end - vma.start) // PAGE_SIZE
        if e.special_name == "[heap]":
            mm.start_brk, mm.brk_end = vma.start, vma.end
        elif e.special_name == "[stack]":
            mm.start_stack = vma.end - PAGE_SIZE
    _give_anon_vmas(mm, entries, vmas)
    if not any(e.special_name == "[heap]" for e in entries):
        mm.start_brk = mm.brk_end = start_brk if start_brk is not None else _brk_after_exe(vmas)
    return mm


def _give_anon_vmas(mm, entries, vmas):
    """anon_vmas for the VMAs that need one (_needs_anon_vma()). A run of adjacent private
    anonymous VMAs is taken to be pieces of one mapping split by mprotect/madvise (a
    thread stack and its guard, an arena opened up piece by piece), which share the
    anon_vma of the mapping they were cut from, so they merge again when made alike. A
    file VMA gets one as anon_vma_prepare() gives it (reusing a compatible neighbour's)."""
    run = prev = None
    for e, vma in sorted(zip(entries, vmas), key=lambda p: p[1].start):
        anon = (vma.file is None and not isinstance(vma, SpecialVMA)
                and not vma.flags & VM_MAYSHARE)
        if not (anon and prev is not None and prev.end == vma.start):
            run = None
        if _needs_anon_vma(e, vma.flags):
            if anon:
                run = vma.anon_vma = run or AnonVma()
            else:
                anon_vma_prepare(mm, vma)
        prev = vma if anon else None


def _brk_after_exe(vmas):
    """Where binfmt_elf leaves the break without randomisation: the page after the
    executable's bss (its last file VMA, and the anonymous VMA right after it, if any)."""
    files = [v for v in vmas if v.file is not None and v.file.kind == "file"
             and not v.file.deleted]
    if not files:
        return 0
    exe = min(files, key=lambda v: v.start).file.inode
    end = max(v.end for v in vmas if v.file is not None and v.file.inode is exe)
    for v in sorted(vmas, key=lambda v: v.start):
        if v.start == end and v.file is None and not isinstance(v, SpecialVMA):
            end = v.end
    return end
