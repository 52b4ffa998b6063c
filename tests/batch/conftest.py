"""Batches run on both backends: one CALL_DTYPE array on the simulator (mm.batch, the C
loop of batch.pyx) and on the host kernel (LiveMM.batch, the live server's loop), compared
row by row, and the address space each leaves behind compared VMA by VMA.

Rows work in the slot at FAR (address_space/conftest.py: free on both backends), so the
same absolute addresses, hence the same results, hold on both.
"""
from dataclasses import dataclass

import numpy as np
import pytest

from address_space.conftest import FAR, GiB, make_system
from ptengine.live.procfs import parse as parse_smaps


@dataclass
class Side:
    backend: str
    system: object
    mm: object

    def layout(self):
        """The VMAs in [FAR, FAR + 4 GiB) as (first page, end page, perms, VmFlags) from FAR."""
        return [((v.start - FAR) >> 12, (v.end - FAR) >> 12, v.perms, " ".join(v.vmflags))
                for v in parse_smaps(self.mm.smaps()) if v.start < FAR + 4 * GiB and FAR < v.end]


class Pair:
    """The two backends, each with one fresh process."""

    def __init__(self):
        self.sides = []
        for backend in ("ptengine", "kernel"):
            system = make_system(backend)
            self.sides.append(Side(backend, system, system.spawn()))

    def run(self, rows, *, files=None, names=None, stop=None, counters=None):
        """Run `rows` on both backends; assert equal results and layouts; the results.
        files(system) makes the backend's file list; counters: one per side."""
        results = []
        for k, side in enumerate(self.sides):
            kw = dict(names=names, stop=stop, counter=counters[k] if counters else None)
            if files is not None:
                kw["files"] = files(side.system)
            got, ns = side.mm.batch(rows, **kw)
            assert got.dtype == np.int64 and len(got) == len(rows) and ns >= 0
            results.append(got)
        sim, live = results
        assert sim.tolist() == live.tolist(), "the backends disagree row by row"
        assert self.sides[0].layout() == self.sides[1].layout()
        return sim.tolist()

    def layout(self):
        layouts = [side.layout() for side in self.sides]
        assert layouts[0] == layouts[1]
        return layouts[0]

    def close(self):
        for side in self.sides:
            if side.backend == "kernel":
                side.system.close()
            else:
                side.mm.exit()


@pytest.fixture
def pair():
    p = Pair()
    yield p
    p.close()
