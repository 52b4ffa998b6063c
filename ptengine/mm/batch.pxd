# The batch row as C sees it (calls.CALL_DTYPE: 56 bytes, naturally aligned), for the
# executor (batch.pyx) and for the workload recorder that writes rows (workloads/rows.pyx).
from libc.stdint cimport int32_t, uint8_t, uint16_t, uint64_t


cdef struct call_t:
    uint8_t op
    uint8_t flags
    uint16_t mm                 # the process: 0, the MM batch() is called on
    int32_t ref                 # an earlier row whose result REL bits add, or -1
    uint64_t a[6]
