# The C fast path of args.py's conversions, for the typed syscall entries (.pyx): an exact
# int that fits converts in C. args.py stays the one place of the rules and their errors
# (plain Python, for every caller): anything else (another integer type, a negative or too
# large value, a wrong type) goes to the args.py function the caller passes as `slow`.
from cpython.long cimport PyLong_AsLong, PyLong_AsUnsignedLongLong, PyLong_CheckExact


cdef inline unsigned long long ulong_arg(object value, str name,
                                         object slow) except? 0xFFFFFFFFFFFFFFFF:
    """args.as_ulong(value, name)."""
    if PyLong_CheckExact(value):
        try:
            return PyLong_AsUnsignedLongLong(value)
        except OverflowError:
            pass                    # negative (wraps) or too large: args.py says which
    return slow(value, name)


cdef inline int cint_arg(object value, str name, object slow) except? -1:
    """args.as_cint(value, name)."""
    cdef long v
    if PyLong_CheckExact(value):
        try:
            v = PyLong_AsLong(value)
        except OverflowError:
            return slow(value, name)
        if -0x80000000 <= v <= 0x7FFFFFFF:
            return <int>v
    return slow(value, name)
