"""The batch row: one call as 56 bytes, on both backends (mirrors no kernel file).

`mm.batch(array)` runs the rows of a CALL_DTYPE array in one C loop (batch.pyx on the
simulator, the live server's OP_BATCH on the host kernel, which reads the rows as its own
`struct call`). `calls()` builds such an array from `(name, *args)` tuples.

numpy is imported on first use of CALL_DTYPE or calls(), as proc/view.py does: importing it
starts OpenBLAS worker threads, and a program that never batches needs none of them.
"""
import enum

from .args import U64_MAX, as_ulong


class CallOp(enum.IntEnum):
    """Which call a row is (the values are server.c's `enum op` too)."""
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
FLAG_RESTART = 0x80     # process_madvise: re-issue the rest after a short count (as a loop would)
NO_FILE = U64_MAX       # mmap's fd_index of an anonymous mapping (-1 as a C cast)

# The method each op stands for: the names of the tuples, of the counted calls
# (workloads.metrics) and of the public MM methods.
CALL_NAMES = {CallOp.MMAP: "mmap", CallOp.MUNMAP: "munmap", CallOp.MPROTECT: "mprotect",
              CallOp.MADVISE: "madvise", CallOp.PROCESS_MADVISE: "process_madvise",
              CallOp.MREMAP: "mremap", CallOp.MLOCK: "mlock", CallOp.MUNLOCK: "munlock",
              CallOp.MLOCKALL: "mlockall", CallOp.MUNLOCKALL: "munlockall",
              CallOp.MSEAL: "mseal", CallOp.BRK: "brk", CallOp.ANON_NAME: "set_anon_name",
              CallOp.TOUCH: "touch"}

# name -> (op, required arguments, defaults of the optional ones), in API order.
# process_madvise takes its iovecs as a list and is expanded by calls().
_SIGNATURES = {
    "mmap": (CallOp.MMAP, 4, (NO_FILE, 0)),            # addr, length, prot, flags, fd_index, offset
    "munmap": (CallOp.MUNMAP, 2, ()),
    "mprotect": (CallOp.MPROTECT, 3, ()),
    "madvise": (CallOp.MADVISE, 3, ()),
    "mremap": (CallOp.MREMAP, 3, (0, 0)),              # old, old_size, new_size, flags, new_addr
    "mlock": (CallOp.MLOCK, 2, (0,)),                  # addr, length, mlock2 flags
    "munlock": (CallOp.MUNLOCK, 2, ()),
    "mlockall": (CallOp.MLOCKALL, 1, ()),
    "munlockall": (CallOp.MUNLOCKALL, 0, ()),
    "mseal": (CallOp.MSEAL, 2, (0,)),
    "brk": (CallOp.BRK, 1, ()),
    "set_anon_name": (CallOp.ANON_NAME, 3, ()),        # addr, length, name_index + 1 (0: None)
    "touch": (CallOp.TOUCH, 1, (1, 0)),                # addr, length, write
}

# The arguments each op's method takes (the rows' a[0..ARITY-1]).
ARITY = {op: required + len(defaults) for op, required, defaults in _SIGNATURES.values()}
ARITY[CallOp.PROCESS_MADVISE] = 3                      # n_iovecs, advice, flags

# batch(stop=...): run every row; stop after the first row that fails without
# FLAG_TOLERATE; stop after the first row whose result differs from the expected one.
STOP_NONE, STOP_ERROR, STOP_EXPECTED = 0, 1, 2

_DTYPE = None


def __getattr__(name):
    if name == "CALL_DTYPE":
        return call_dtype()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def call_dtype():
    """CALL_DTYPE, made on first use (numpy is imported then)."""
    global _DTYPE
    if _DTYPE is None:
        import numpy as np
        _DTYPE = np.dtype([("op", "<u1"), ("flags", "<u1"), ("mm", "<u2"), ("ref", "<i4"),
                           ("a", "<u8", (6,))], align=True)
        assert _DTYPE.itemsize == 56, "server.c's struct call is 56 bytes"
    return _DTYPE


def _word(value, what):
    try:
        return as_ulong(value, what)
    except OverflowError as e:
        raise ValueError(str(e)) from None


def calls(tuples):
    """A CALL_DTYPE array from `(name, *args)` tuples with the methods' integer arguments.

    `("process_madvise", [(addr, len), ...], advice[, flags])` becomes its row and one IOVEC
    row per range. Every row gets ref -1 and no flags. Unknown names and wrong arities are
    ValueError, non-integers TypeError, raised before any row exists."""
    import numpy as np
    rows = []
    for call in tuples:
        if not isinstance(call, (tuple, list)) or not call:
            raise TypeError(f"a call is a (name, *args) tuple, not {call!r}")
        name, *args = call
        if name == "process_madvise":
            rows += _process_madvise_rows(args)
            continue
        try:
            op, required, defaults = _SIGNATURES[name]
        except (KeyError, TypeError):
            raise ValueError(f"{name!r} is not a call a batch can make") from None
        if not required <= len(args) <= required + len(defaults):
            raise ValueError(f"{name} takes {required} to {required + len(defaults)} "
                             f"arguments, not {len(args)}")
        words = [_word(a, f"{name} argument {i}") for i, a in enumerate(args)]
        rows.append((op, words + list(defaults[len(args) - required:])))
    out = np.zeros(len(rows), dtype=call_dtype())
    out["ref"] = -1
    if rows:
        out["op"] = [op for op, _ in rows]
        out["a"] = [words + [0] * (6 - len(words)) for _, words in rows]
    return out


def _process_madvise_rows(args):
    if len(args) not in (2, 3):
        raise ValueError(f"process_madvise takes 2 or 3 arguments, not {len(args)}")
    iovecs, advice, *flags = args
    try:
        vec = [(_word(base, "iov_base"), _word(n, "iov_len")) for base, n in iovecs]
    except (TypeError, ValueError) as e:
        if isinstance(e, TypeError) and "must be an integer" in str(e):
            raise
        raise TypeError("iovecs must be a sequence of (addr, length) pairs") from None
    head = [len(vec), _word(advice, "advice"), _word(flags[0] if flags else 0, "flags")]
    return [(CallOp.PROCESS_MADVISE, head)] + [(CallOp.IOVEC, list(v)) for v in vec]


def as_calls(rows):
    """The CALL_DTYPE array batch() runs: `rows` itself when it is one (no copy when it is
    contiguous), else calls(rows). TypeError for an array of another dtype."""
    import numpy as np
    if isinstance(rows, np.ndarray):
        if rows.dtype != call_dtype():
            raise TypeError(f"a batch array has dtype CALL_DTYPE, not {rows.dtype}")
        if rows.ndim != 1:
            raise ValueError("a batch array is one-dimensional")
        return np.ascontiguousarray(rows)
    return calls(rows)


def stop_rule(stop, n):
    """batch()'s stop argument checked: (STOP_*, the expected int64 results or None)."""
    import numpy as np
    if stop is None:
        return STOP_NONE, None
    if isinstance(stop, str):
        if stop != "error":
            raise ValueError(f"stop must be None, 'error' or an array of results, not {stop!r}")
        return STOP_ERROR, None
    expected = np.ascontiguousarray(stop, dtype=np.int64)
    if expected.shape != (n,):
        raise ValueError(f"stop holds {expected.shape} results for {n} rows")
    return STOP_EXPECTED, expected


def object_table(values, what, types):
    """batch()'s files= or names= as a list whose entries are all of the accepted types
    (TypeError before any call otherwise)."""
    values = [] if values is None else list(values)
    for v in values:
        if not isinstance(v, types):
            raise TypeError(f"{what} holds {type(v).__name__}, not "
                            f"{' or '.join(t.__name__ for t in types)}")
    return values


def call_at(rows, results, i, files, names):
    """(name, args) of the call row i made, its REL arguments resolved as the executor
    resolved them: what workloads.metrics.SyscallCounter.last_call holds for a method call."""
    a = _resolved(rows[i:i + 1], results)[0]
    op = CallOp(int(rows[i]["op"]))
    if op == CallOp.PROCESS_MADVISE:
        iovecs = [(base, length) for base, length, *_ in
                  _resolved(rows[i + 1:i + 1 + a[0]], results)]
        return CALL_NAMES[op], (iovecs, a[1])
    args = a[:ARITY[op]]
    if op == CallOp.MMAP:
        args[4] = None if a[4] == NO_FILE else files[a[4]]
    elif op == CallOp.ANON_NAME:
        args[2] = names[a[2] - 1] if a[2] else None
    return CALL_NAMES[op], tuple(args)


def _resolved(rows, results):
    """The argument words of `rows` as lists of ints, a[k] plus the result of row `ref`
    where REL bit k is set, modulo 2**64 (uint64 arithmetic): one numpy pass for a whole
    process_madvise (batch.pyx asks for the last call of every batch)."""
    import numpy as np
    refs = rows["ref"].astype(np.int64)
    add = np.where(refs >= 0, np.asarray(results)[np.maximum(refs, 0)], 0).astype(np.uint64)
    rel = (rows["flags"][:, None] >> np.arange(6)) & 1
    return (rows["a"] + rel.astype(np.uint64) * add[:, None]).tolist()


__all__ = ["CALL_DTYPE", "CallOp", "FLAG_REL", "FLAG_TOLERATE", "FLAG_RESTART", "NO_FILE",
           "CALL_NAMES", "ARITY", "STOP_NONE", "STOP_ERROR", "STOP_EXPECTED", "calls",
           "as_calls", "stop_rule", "object_table", "call_at"]
