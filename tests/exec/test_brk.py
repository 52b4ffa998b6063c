"""brk next to the bss, against the kernel (issue 11, item 4).

The live backend's server cannot show this: its own break already has a heap of its own
(static glibc sbrk()s its TLS), and the break of a fresh simulated MM has nothing beside
it. So both sides start from an exec'd real program whose bss ends at start_brk: the
kernel half makes the calls in the program stopped at its first instruction (launcher.c
-s), the simulator half makes them on system.execve() of the same program; every return
value and the final maps must be equal, line for line.

    bss (anon rw-p) | start_brk
    ----------------+---------------------------   brk(start + 1)
    bss             | [heap]                       a VMA of its own, never the bss grown
"""
import pytest

import ptengine
from ptengine.constants import (MAP_ANONYMOUS, MAP_FIXED_NOREPLACE, MAP_PRIVATE, PAGE_SIZE,
                                PROT_READ, PROT_WRITE)

from .test_execve import ENV, built, kernel_exec  # noqa: F401  (built is a fixture)

P = PAGE_SIZE
NR = {"mmap": 9, "mprotect": 10, "munmap": 11, "brk": 12}
ANON = MAP_PRIVATE | MAP_ANONYMOUS
RW = PROT_READ | PROT_WRITE

# Each scenario: calls as (name, *args) with addresses relative to start_brk (S).
SCENARIOS = {
    # The heap is its own VMA beside the bss, grows and shrinks in place.
    "grow beside the bss": [("brk", 0), ("brk", 1), ("brk", 5 * P + 7), ("brk", 2 * P),
                            ("brk", 1 << 62), ("brk", 3 * P)],
    # Shrinking needs a VMA in [newbrk, oldbrk): with the heap unmapped it is refused;
    # growing then starts a new VMA at the old break.
    "shrink over nothing": [("brk", 4 * P), ("munmap", 0, 4 * P), ("brk", P),
                            ("brk", 6 * P)],
    # Below start_brk nothing moves.
    "below the start": [("brk", -P), ("brk", P), ("brk", -1), ("brk", 0)],
    # Growth needs the new end plus a page free.
    "blocked by a mapping": [("mmap", 8 * P, P, RW, ANON | MAP_FIXED_NOREPLACE),
                             ("brk", 8 * P), ("brk", 7 * P + 1), ("brk", 7 * P)],
    # Only the VMA ending at the break may grow: a read-only piece of the heap is not
    # merged with, the growth is a VMA of its own, and all three are [heap].
    "heap split by mprotect": [("brk", 4 * P), ("mprotect", 2 * P, 2 * P, PROT_READ),
                               ("brk", 6 * P), ("brk", 8 * P)],
}


def sim_call(mm, name, args):
    try:
        ret = getattr(mm, name)(*args)
    except OSError as e:
        return -e.errno
    return 0 if ret is None else ret


@pytest.mark.parametrize("program", ["static", "pie"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_brk_against_the_kernel(built, program, scenario):
    if program not in built:
        pytest.skip(f"cc cannot link a {program} program here")
    path = built[program]
    argv = [path]
    mm = ptengine.System().execve(path, argv, envp=ENV)
    start = mm.start_brk
    calls = []
    for name, first, *rest in SCENARIOS[scenario]:
        # brk(0) asks for the break; every other address is start_brk-relative.
        addr = 0 if name == "brk" and first == 0 and len(calls) == 0 else start + first
        calls.append((name, addr, *rest))
    encoded = [",".join(format(v & (1 << 64) - 1, "x") for v in (NR[name], *args))
               for name, *args in calls]
    raw, maps, _, _ = kernel_exec(built, path, argv, syscalls=encoded)
    kernel = [r - (1 << 64) if r >= 1 << 63 else r for r in raw]
    sim = [sim_call(mm, name, args) for name, *args in calls]
    assert sim == kernel
    assert mm.maps().splitlines() == maps.splitlines()
    mm.check()

