# Compiles fault.pyx's class as an extension type: the link of the chain right above
# AddressSpace, so that the syscall classes built on it (mapping.pxd and on) fault and
# populate through C calls, not through methods only a Python subclass has.
from .addrspace cimport AddressSpace
from .vma cimport VMA, u64

cpdef u64 pte_flags_for(u64 vm_flags, bint write)
cpdef bint thp_vma(VMA vma, int thp_enabled)
cpdef bint access_error(VMA vma, bint write)


cdef class FaultHandling(AddressSpace):
    cdef int touch_range(self, u64 addr, u64 size, bint write, u64 *at) except -1
    cdef int fault_tables(self, u64 page, bint pte_table) except -1
    cdef int populate_range(self, u64 start, u64 end, bint ignore_errors) except -1
    cdef int madvise_populate(self, u64 start, u64 end, bint write) except -1
    # The typed entry point of touch() (see advice.pxd): 0 or the signal number.
    cdef long long sys_touch(self, u64 addr, u64 length, bint write) except? -1
