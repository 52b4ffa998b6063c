"""execve() of an ELF program: the address space fs/binfmt_elf.c:load_elf_binary() leaves.

A new mm gets, in the kernel's order: the stack with the argument strings
(setup_arg_pages()), the program's PT_LOAD segments (a PIE at ELF_ET_DYN_BASE, a non-PIE
binary at its link address, a static PIE top-down), each bss as padzero() and
vm_brk_flags() leave it, the PT_INTERP interpreter top-down from mmap_base
(load_elf_interp()), the vDSO below that (map_vdso()), the auxiliary tables on the stack
(create_elf_tables()) and the initial break. Segments are mapped with the MM's own mmap and
munmap, as the kernel maps them with vm_mmap() and vm_munmap(), so placement, merging and
the THP alignment of large file mappings follow the same code as every other mapping.

ELF headers are read from the host file with pyelftools; file mappings refer to
`System.open(path)` files, which carry the host file's size, device and inode numbers.
Only x86-64 ELF programs are loaded; anything else is ENOEXEC (a `#!` script, a 32-bit
program), as a kernel without binfmt_script and IA32 emulation answers.
"""
import errno
import operator
import os
import stat
from resource import RLIM_INFINITY
from collections import namedtuple

from ..constants import (MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_PRIVATE, PAGE_MASK, PAGE_SIZE,
                        PROT_EXEC, PROT_READ, PROT_WRITE, TASK_SIZE, VM_EXEC)
from ..errors import Fault, raise_errno
from ..mm.brk import vm_brk_flags
from .layout import (copy_strings, create_elf_tables, map_vdso, mmap_base,
                          setup_arg_pages)

U64 = (1 << 64) - 1
# DEFAULT_MAP_WINDOW / 3 * 2: where a PIE goes (aligned down to its segments' alignment),
# and the break of a program run without an interpreter that is itself ET_DYN.
ELF_ET_DYN_BASE = TASK_SIZE // 3 * 2
PF_X, PF_W, PF_R = 1, 2, 4

Load = namedtuple("Load", "vaddr offset filesz memsz flags align")


class ElfImage:
    """What load_elf_binary() reads of one file: its type, PT_LOAD segments, PT_INTERP
    and PT_GNU_STACK."""

    def __init__(self, path):
        from elftools.common.exceptions import ELFError
        from elftools.elf.elffile import ELFFile
        st = os.stat(path)              # ENOENT, ENOTDIR, ELOOP as open_exec() gives them
        if not stat.S_ISREG(st.st_mode) or not os.access(path, os.X_OK):
            raise_errno(errno.EACCES)
        with open(path, "rb") as f:
            if f.read(4) != b"\x7fELF":
                raise_errno(errno.ENOEXEC)
            f.seek(0)
            try:
                elf = ELFFile(f)
                if elf.elfclass != 64 or elf.header["e_machine"] != "EM_X86_64":
                    raise_errno(errno.ENOEXEC)
                self.type = elf.header["e_type"]
                if self.type not in ("ET_EXEC", "ET_DYN"):
                    raise_errno(errno.ENOEXEC)
                self.loads, self.interp, self.executable_stack = [], None, None
                for seg in elf.iter_segments():
                    kind = seg["p_type"]
                    if kind == "PT_LOAD":
                        self.loads.append(Load(seg["p_vaddr"], seg["p_offset"],
                                               seg["p_filesz"], seg["p_memsz"],
                                               seg["p_flags"], seg["p_align"]))
                    elif kind == "PT_INTERP" and self.interp is None:
                        self.interp = seg.get_interp_name()
                    elif kind == "PT_GNU_STACK":
                        self.executable_stack = bool(seg["p_flags"] & PF_X)
            except ELFError:
                raise_errno(errno.ENOEXEC)
        if not self.loads:
            raise_errno(errno.EINVAL)       # total_mapping_size() of nothing
        self.path = path


def execve(system, path, argv=None, envp=None, stack_rlimit=8 << 20):
    """A new process of `system` as execve(path, argv, envp) leaves it with ASLR off.
    argv defaults to [path], envp to an empty environment (a mapping or "NAME=value"
    strings); the strings only size the stack (as copied there, with the path).
    stack_rlimit (RLIMIT_STACK, resource.RLIM_INFINITY for unlimited) sizes the gap
    between the stack and mmap_base and caps the stack."""
    path = os.fspath(path)
    if not isinstance(path, str):
        path = os.fsdecode(path)
    argv = [path] if argv is None else list(argv)
    if not argv:
        argv = [""]            # do_execveat_common() gives an empty argv one empty string
    envp = [] if envp is None else (
        [f"{k}={v}" for k, v in envp.items()] if hasattr(envp, "items") else list(envp))
    for s in (*argv, *envp):
        if not isinstance(s, (str, bytes)):
            raise TypeError("argv and envp hold str or bytes")
    stack_rlimit = operator.index(stack_rlimit)
    if stack_rlimit == RLIM_INFINITY:
        stack_rlimit = U64                 # the kernel's RLIM_INFINITY
    if not 0 < stack_rlimit <= U64:
        raise ValueError("stack_rlimit must be a positive rlim_t or resource.RLIM_INFINITY")
    image = ElfImage(path)
    interp = ElfImage(image.interp) if image.interp else None
    p = copy_strings(os.fsencode(path), [os.fsencode(a) for a in argv],
                     [os.fsencode(e) for e in envp], stack_rlimit)
    mm = system.spawn(mmap_base=mmap_base(stack_rlimit))
    setup_arg_pages(mm, p, stack_rlimit, image.executable_stack)
    load_bias, elf_brk = load_program(mm, system.open(path).reopen(), image,
                                      interp is not None)
    if interp is not None:
        load_elf_interp(mm, system.open(interp.path).reopen(), interp, load_bias)
    map_vdso(mm)
    create_elf_tables(mm, p, len(argv), len(envp))
    if image.type == "ET_DYN" and interp is None:
        # A loader run as the program: its break moves out of the mmap region.
        elf_brk = ELF_ET_DYN_BASE
    mm.start_brk = mm.brk_end = _page_align(elf_brk)
    return mm


# mirrors the PT_LOAD loop of fs/binfmt_elf.c:load_elf_binary()
def load_program(mm, file, image, has_interp):
    """Map the program's segments; returns (load_bias, end of its highest segment)."""
    loads = image.loads
    load_bias, elf_brk, first = 0, 0, True
    for seg in loads:
        prot = make_prot(seg.flags)
        flags, total = MAP_PRIVATE, 0
        if not first:
            flags |= MAP_FIXED
        elif image.type == "ET_EXEC":
            flags |= MAP_FIXED_NOREPLACE
        else:
            # ET_DYN: reserve the whole image at once (holes between segments are given
            # back by elf_map()); a PIE goes to ELF_ET_DYN_BASE, a loader run directly
            # goes top-down, first mapped once to learn where if it wants big alignment.
            total = total_mapping_size(loads)
            alignment = maximum_alignment(loads)
            if has_interp:
                load_bias = ELF_ET_DYN_BASE
                if alignment:
                    load_bias &= ~(alignment - 1)
                flags |= MAP_FIXED_NOREPLACE
            elif alignment > PAGE_SIZE:
                load_bias = elf_load(mm, file, 0, seg, prot, flags, total)
                mm.munmap(load_bias, total)
                load_bias &= ~(alignment - 1)
                flags |= MAP_FIXED_NOREPLACE
            else:
                load_bias = 0
            load_bias = (load_bias - seg.vaddr) & PAGE_MASK & U64
        addr = elf_load(mm, file, (load_bias + seg.vaddr) & U64, seg, prot, flags, total)
        if first:
            first = False
            if image.type == "ET_DYN":
                load_bias = (load_bias + addr - ((load_bias + seg.vaddr) & PAGE_MASK)) & U64
        if seg.filesz > seg.memsz or seg.memsz > TASK_SIZE or \
                TASK_SIZE - seg.memsz < seg.vaddr:
            raise_errno(errno.EINVAL)
        elf_brk = max(elf_brk, seg.vaddr + seg.memsz)
    return load_bias, (elf_brk + load_bias) & U64


# mirrors fs/binfmt_elf.c:load_elf_interp()
def load_elf_interp(mm, file, image, no_base):
    """Map the interpreter: its first segment reserves the whole image top-down from
    mmap_base (hint 0), the others go MAP_FIXED at their offsets from it."""
    total = total_mapping_size(image.loads)
    load_addr, load_addr_set = 0, False
    for seg in image.loads:
        flags = MAP_PRIVATE
        if image.type == "ET_EXEC" or load_addr_set:
            flags |= MAP_FIXED
        elif no_base and image.type == "ET_DYN":
            load_addr = -seg.vaddr & U64
        addr = elf_load(mm, file, (load_addr + seg.vaddr) & U64, seg, make_prot(seg.flags),
                        flags, total)
        total = 0
        if not load_addr_set and image.type == "ET_DYN":
            load_addr = (addr - (seg.vaddr & PAGE_MASK)) & U64
            load_addr_set = True
    return load_addr


# mirrors fs/binfmt_elf.c:elf_load()
def elf_load(mm, file, addr, seg, prot, flags, total_size):
    """Map one segment's file part, zero the rest of its last file page (padzero()) and
    map the bss pages beyond it as brk does (vm_brk_flags())."""
    inpage = seg.vaddr & ~PAGE_MASK
    if seg.filesz:
        map_addr = elf_map(mm, file, addr, seg, prot, flags, total_size)
        zero_start = map_addr + inpage + seg.filesz
        zero_end = map_addr + inpage + seg.memsz
        if seg.memsz > seg.filesz and zero_start & ~PAGE_MASK:
            # clear_user(): a write fault makes the page a private copy; on a read-only
            # segment it fails, which only matters (EFAULT) for a writable one.
            try:
                mm.write(zero_start, bytes(PAGE_SIZE - (zero_start & ~PAGE_MASK)))
            except Fault:
                if prot & PROT_WRITE:
                    raise_errno(errno.EFAULT)
    else:
        map_addr = zero_start = addr & PAGE_MASK
        zero_end = zero_start + inpage + seg.memsz
    if seg.memsz > seg.filesz:
        zero_start, zero_end = _page_align(zero_start), _page_align(zero_end)
        vm_brk_flags(mm, zero_start, zero_end - zero_start, VM_EXEC if prot & PROT_EXEC else 0)
    return map_addr


# mirrors fs/binfmt_elf.c:elf_map()
def elf_map(mm, file, addr, seg, prot, flags, total_size):
    """mmap the segment's file pages; with total_size, map the whole image first (that
    decides where it goes) and unmap what lies past this segment."""
    inpage = seg.vaddr & ~PAGE_MASK
    size = _page_align(seg.filesz + inpage)
    off = seg.offset - inpage
    addr &= PAGE_MASK
    if not size:
        return addr
    if total_size:
        total_size = _page_align(total_size)
        map_addr = mm.mmap(addr, total_size, prot, flags, file, off)
        if total_size > size:
            mm.munmap(map_addr + size, total_size - size)
        return map_addr
    return mm.mmap(addr, size, prot, flags, file, off)


def make_prot(p_flags):
    return ((PROT_READ if p_flags & PF_R else 0) | (PROT_WRITE if p_flags & PF_W else 0)
            | (PROT_EXEC if p_flags & PF_X else 0))


def total_mapping_size(loads):
    """From the first segment's page to the end of the highest one."""
    return max(s.vaddr + s.memsz for s in loads) - min(s.vaddr & PAGE_MASK for s in loads)


def maximum_alignment(loads):
    """The largest power-of-two p_align of the segments, page aligned (0 if none)."""
    aligns = [s.align for s in loads if s.align and not s.align & (s.align - 1)]
    return _page_align(max(aligns, default=0))


def _page_align(n):
    return (n + PAGE_SIZE - 1) & PAGE_MASK & U64
