"""LiveSystem and LiveMM: the host's machine and its processes, in the simulator's shape
(mirrors no kernel file: system.py's System and MM on the host kernel).

They construct each other (LiveSystem.spawn() builds a LiveMM; `LiveMM()` builds a
LiveSystem for itself), so they share this module: files.py and process.py below hold all
they do.
"""
from .files import LiveMachine, check_host_options
from .process import LiveProcess


class LiveSystem(LiveMachine):
    """Real files and processes on the host kernel, in the simulator's System shape."""

    def spawn(self, **options):
        """A new process (a fresh server) with an empty-as-possible address space."""
        check_host_options(options)
        return LiveMM(self, timeout=self.timeout)


class LiveMM(LiveProcess):
    """One real address space. `LiveMM()` is shorthand for a LiveSystem of its own, closed
    with its last process."""

    def __init__(self, system=None, *, timeout=None, _conn=None, _parent=None):
        if system is None:
            system = LiveSystem(timeout=timeout)
            system._implicit = True
        super().__init__(system, timeout=timeout, _conn=_conn, _parent=_parent)
