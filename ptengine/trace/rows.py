"""The pending rows of a replay: logged calls waiting to run as one batch (mirrors no kernel
file).

Replay turns each call it can into CALL_DTYPE rows with the logged arguments (ASLR off,
so the logged addresses are the simulator's too) and the logged result beside them; the
stretch runs as one batch when replay next needs the simulator's state or the end of the
log is reached. A first-write touch that follows a call is a row whose `ref` is that call:
it runs only if the call succeeded, at an address relative to its result (REL_A0), so no
row depends on the logged result being what the simulator returns.
"""
import array

from ..args import U64_MAX
from ..calls import NO_FILE, CallOp, call_dtype


class Stretch:
    """Rows as seven 64-bit words each (the row's header packed in one, as CALL_DTYPE lays
    it out little-endian), viewed as CALL_DTYPE without a copy when submitted."""

    def __init__(self):
        self.words = array.array("Q")
        self.ops = []                # each row's op
        self.files, self.names = [], []
        self.mains = []              # row index of each logged call
        self.calls = []              # (position in the order, call), in step with mains

    def __len__(self):
        return len(self.ops)

    def add(self, op, args, *, ref=-1, flags=0):
        self.ops.append(op)
        self.words.append(op | flags << 8 | (ref & 0xffffffff) << 32)
        self.words.extend([a & U64_MAX for a in args])
        self.words.extend(_ZEROS[len(args)])
        return len(self.ops) - 1

    def call(self, position, call, op, args):
        """A logged call's row; its result is compared with the log's."""
        i = self.add(op, args)
        self.mains.append(i)
        self.calls.append((position, call))
        return i

    def touch(self, ref, offset):
        """The first-write assumption's write of one page at `offset` from row ref's
        result (an mmap's address; 0 for an mprotect, whose pages are absolute)."""
        self.add(CallOp.TOUCH, (offset, 1, 1), ref=ref,
                 flags=1 if self.ops[ref] == CallOp.MMAP else 0)

    def file(self, file):
        """mmap's fd_index of a simulated file (None: anonymous)."""
        if file is None:
            return NO_FILE
        self.files.append(file)
        return len(self.files) - 1

    def name(self, name):
        """set_anon_name's name index + 1 (0: None)."""
        if name is None:
            return 0
        self.names.append(name)
        return len(self.names)

    def array(self):
        import numpy as np
        return np.frombuffer(self.words, dtype=call_dtype())


_ZEROS = [array.array("Q", [0] * (6 - n)) for n in range(7)]
