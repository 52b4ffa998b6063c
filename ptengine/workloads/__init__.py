"""Workload models of real software under two guard strategies, and their costs
(mirrors no kernel file).

Each model is a sequence of real calls on an MM (the simulator's, or the host kernel's
through `ptengine.live`), parametrised with the software's real defaults (workloads.md
§1-§2). Run one with `run(name, strategy, params)`; define a new one with the building
blocks and the `workload` decorator::

    @workload("my_pool", scale="n", defaults=dict(n=100))
    def my_pool(run):
        for _ in run.objects(run.p.n, "object"):
            guarded_mapping(run.mm, 64 * KiB, PAGE_SIZE, PAGE_SIZE, run.strategy,
                            batcher=run.batcher())
"""
from .blocks import (ANON, RW, STRATEGIES, Batcher, GiB, Guarded, KiB, MiB, Strategy,
                     clear_guard, guarded_mapping, name_vma, page_align, release, set_guard,
                     touch_top)
from ..callkind import lock_mode
from .metrics import VMA_STRUCT_BYTES, CountingMM, Snapshot, SyscallCounter
from .registry import WORKLOADS, Workload, get, parse_int, suite, workload
from .runner import Limit, Run, RunResult, run

# Registering the models (import order is the suite's order).
from .models import threads, android, allocators, fibers, wasm  # noqa: E402,F401

__all__ = [
    "ANON", "RW", "KiB", "MiB", "GiB", "STRATEGIES", "Strategy", "Batcher", "Guarded",
    "guarded_mapping", "release", "set_guard", "clear_guard", "name_vma", "page_align",
    "touch_top", "VMA_STRUCT_BYTES", "CountingMM", "Snapshot", "SyscallCounter", "lock_mode",
    "WORKLOADS", "Workload", "workload", "get", "suite", "parse_int", "Limit", "Run",
    "RunResult", "run",
]
