# cython: auto_pickle=False
"""The syscalls' entry, as include/linux/syscalls.h's SYSCALL_DEFINEn has it.

Each public method of MM converts its arguments as SYSCALL_DEFINEn does (long -> unsigned long, int from the low
32 bits) and calls the typed function of its kernel file. Nothing else is here: the
syscalls' work is in mmap.pyx, mremap.pyx, brk.pyx, mprotect.pyx, mlock.pyx, mseal.pyx,
madvise.pyx, memory.pyx and userfaultfd.pyx, over the mm_struct this class extends.
"""
from .argconv cimport cint_arg, ulong_arg
from .brk cimport sys_brk
from .madvise cimport sys_madvise, sys_process_madvise, sys_set_anon_name
from .mlock cimport sys_mlock, sys_mlockall, sys_munlock, sys_munlockall
from .mm_struct cimport mm_struct
from .mmap cimport sys_mmap, sys_munmap
from .mprotect cimport sys_mprotect
from .mremap cimport sys_mremap
from .mseal cimport sys_mseal

from ..args import as_cint, as_ulong
from .memory import access_read, access_write, user_access, user_touch
from .userfaultfd import UFFDIO_REGISTER_MODE_MISSING, install_poison, uffd_register, uffd_unregister


cdef class MMCalls(mm_struct):
    """The syscalls and user accesses of API.md's MM, on this address space."""

    def mmap(self, addr, length, prot, flags, fd=None, offset=0):
        return sys_mmap(self, ulong_arg(addr or 0, "addr", as_ulong),
                        ulong_arg(length, "length", as_ulong),
                        ulong_arg(prot, "prot", as_ulong),
                        ulong_arg(flags, "flags", as_ulong), fd,
                        ulong_arg(offset, "offset", as_ulong))

    def munmap(self, addr, length):
        sys_munmap(self, ulong_arg(addr, "addr", as_ulong), ulong_arg(length, "length", as_ulong))

    def mremap(self, old_address, old_size, new_size, flags=0, new_address=0):
        return sys_mremap(self, ulong_arg(old_address, "old_address", as_ulong),
                          ulong_arg(old_size, "old_size", as_ulong),
                          ulong_arg(new_size, "new_size", as_ulong),
                          ulong_arg(flags, "flags", as_ulong),
                          ulong_arg(new_address or 0, "new_address", as_ulong))

    def brk(self, addr):
        return sys_brk(self, ulong_arg(addr or 0, "addr", as_ulong))

    def mprotect(self, addr, length, prot):
        sys_mprotect(self, ulong_arg(addr, "addr", as_ulong),
                     ulong_arg(length, "length", as_ulong),
                     ulong_arg(prot, "prot", as_ulong))

    def mlock(self, addr, length, flags=0):
        """mlock(2), or mlock2(2) when flags are given."""
        sys_mlock(self, ulong_arg(addr, "addr", as_ulong),
                  ulong_arg(length, "length", as_ulong),
                  ulong_arg(flags, "flags", as_ulong))

    def munlock(self, addr, length):
        sys_munlock(self, ulong_arg(addr, "addr", as_ulong),
                    ulong_arg(length, "length", as_ulong))

    def mlockall(self, flags):
        sys_mlockall(self, ulong_arg(flags, "flags", as_ulong))

    def munlockall(self):
        sys_munlockall(self)

    def mseal(self, addr, length, flags=0):
        sys_mseal(self, ulong_arg(addr, "addr", as_ulong),
                  ulong_arg(length, "length", as_ulong),
                  ulong_arg(flags, "flags", as_ulong))

    def set_anon_name(self, addr, length, name):
        sys_set_anon_name(self, ulong_arg(addr, "addr", as_ulong),
                          ulong_arg(length, "length", as_ulong), name)

    def madvise(self, addr, length, advice):
        # addr and length are unsigned long (a negative one wraps as the C cast does);
        # advice is an int: the kernel reads the low 32 bits of the register.
        sys_madvise(self, ulong_arg(addr, "addr", as_ulong),
                    ulong_arg(length, "length", as_ulong),
                    cint_arg(advice, "advice", as_cint))

    def process_madvise(self, iovecs, advice, flags=0):
        """process_madvise(2) on this process's own mm: the bytes advised."""
        # behavior is an int, as for madvise(); flags an unsigned int (sys_ takes its low
        # 32 bits).
        advice, flags = as_cint(advice, "advice"), as_ulong(flags, "flags")
        try:
            vec = [(as_ulong(a, "iov_base"), as_ulong(n, "iov_len")) for a, n in iovecs]
        except ValueError:
            raise TypeError("iovecs must be a sequence of (addr, length) pairs") from None
        return sys_process_madvise(self, vec, advice, flags)


    # mirrors mm/memory.c and arch/x86/mm/fault.c: user-mode accesses
    def access(self, addr, *, write=False, exec=False):
        """One user access; the signal it would get, or None."""
        return user_access(self, addr, write=write, exec=exec)

    def touch(self, addr, size=1, *, write=False):
        """Fault in every page of [addr, addr+size) as user accesses would."""
        user_touch(self, addr, size, write=write)

    def read(self, addr, size):
        return access_read(self, addr, size)

    def write(self, addr, data):
        access_write(self, addr, data)

    # mirrors fs/userfaultfd.c and mm/userfaultfd.c
    def uffd_register(self, addr, length, mode=UFFDIO_REGISTER_MODE_MISSING):
        return uffd_register(self, addr, length, mode)

    def uffd_unregister(self, addr, length):
        uffd_unregister(self, addr, length)

    def install_poison(self, addr, length):
        install_poison(self, addr, length)
