"""Errors and user-mode faults (include/uapi/asm-generic/errno-base.h, siginfo.h).

Syscall-shaped methods report failure the way the syscall does: an `OSError` carrying the
kernel's errno. A user-mode access the kernel answers with a signal raises a `Fault`.
Errors are turned into exceptions in this one place (`raise_errno`), as uvloop does.
"""
import errno as _errno
import os
import signal

from .constants import BUS_ADRERR, BUS_MCEERR_AR, SEGV_ACCERR, SEGV_MAPERR


def syscall_error(err):
    """The OSError a failing syscall with this (positive) errno raises."""
    return OSError(err, os.strerror(err))


def raise_errno(err):
    raise syscall_error(err)


class Fault(Exception):
    """A user-mode access that the kernel answers with a signal."""

    signal = None

    def __init__(self, code, address):
        self.code = code
        self.address = address
        super().__init__(f"{self.signal.name} ({_CODE_NAMES.get((self.signal, code), code)}) "
                         f"at {address:#x}")

    def __eq__(self, other):
        return (type(self) is type(other) and self.code == other.code
                and self.address == other.address)

    def __hash__(self):
        return hash((type(self), self.code, self.address))


class SegmentationFault(Fault):
    signal = signal.Signals.SIGSEGV


class BusError(Fault):
    signal = signal.Signals.SIGBUS


class InvariantError(AssertionError):
    """Raised by MM.check() when two internal structures disagree."""


_CODE_NAMES = {
    (signal.Signals.SIGSEGV, SEGV_MAPERR): "SEGV_MAPERR",
    (signal.Signals.SIGSEGV, SEGV_ACCERR): "SEGV_ACCERR",
    (signal.Signals.SIGBUS, BUS_ADRERR): "BUS_ADRERR",
    (signal.Signals.SIGBUS, BUS_MCEERR_AR): "BUS_MCEERR_AR",
}


def fault_for(sig, code, address):
    """Build the Fault subclass instance that matches a delivered signal."""
    cls = SegmentationFault if sig == signal.SIGSEGV else BusError
    return cls(code, address)


ERRNO_NAMES = {v: k for k, v in vars(_errno).items() if k.startswith("E") and isinstance(v, int)}
