"""The metrics of a run, defined once: compare's text table, its CSV/Parquet, sweep rows
(mirrors no kernel file).

A run becomes one flat row: who ran (workload, strategy, backend), every parameter of the
model as its own column, then every metric in METRICS. `ptengine compare` prints the
metrics that have a label; `compare --csv/--parquet` and `ptengine sweep` write the rows
with pandas, so a notebook loads the same columns from either.
"""
import dataclasses
import json

from .metrics import VMA_STRUCT_BYTES
from .registry import get


@dataclasses.dataclass(frozen=True)
class Metric:
    column: str              # the table's column name
    get: object              # RunResult -> value (None where it does not apply)
    label: str = ""          # its row in compare's text table ("" = table files only)
    fmt: str = "{:,}"        # how the text table prints it: a format string, or "bytes"
    change: bool = True      # the text table shows the change against the first strategy
    dtype: str = "Int64"     # its pandas type (nullable: a failed run has no figures)


def _limit(field):
    return lambda r: None if r.limit is None else getattr(r.limit, field)


def _json(get):
    """Nested figures (calls by name...) as one JSON text cell, so the table stays flat."""
    return lambda r: json.dumps(get(r), sort_keys=True) if get(r) is not None else None


METRICS = (
    Metric("vmas", lambda r: r.delta.map_count, "VMAs (map_count Δ)"),
    Metric("expected_vmas", lambda r: r.expected_vmas, "  closed form (§2)", change=False),
    Metric("peak_vmas", lambda r: r.peak_map_count, "  peak during run Δ"),
    Metric("maps_lines", lambda r: r.delta.maps_lines, "/proc maps lines Δ"),
    Metric("vm_pte_bytes", lambda r: r.delta.vm_pte_kb * 1024, "VmPTE Δ", "bytes"),
    Metric("vma_slab_bytes", lambda r: r.delta.map_count * VMA_STRUCT_BYTES,
           f"VMA slab est. (×{VMA_STRUCT_BYTES} B)", "bytes"),
    Metric("syscalls", lambda r: r.syscalls["total"], "syscalls"),
    Metric("syscalls_write_locked", lambda r: r.syscalls["write_locked"], "  mmap_lock write"),
    Metric("syscalls_read_locked", lambda r: r.syscalls["read_locked"], "  mmap_lock read"),
    Metric("syscalls_unlocked", lambda r: r.syscalls["unlocked"]),
    Metric("process_madvise_iovecs", lambda r: r.syscalls["process_madvise_iovecs"]),
    Metric("syscalls_by_name", _json(lambda r: r.syscalls["by_name"]), dtype="string"),
    Metric("failed_calls", _json(lambda r: r.syscalls["failed"] or None), dtype="string"),
    Metric("wall_time_s", lambda r: r.wall_time, "time, per call (model + calls)",
           "{:.3f} s", dtype="Float64"),
    Metric("batch_time_s", lambda r: None if r.batch_ns is None else r.batch_ns / 1e9,
           "time, one batch (executor loop)", "{:.4f} s", dtype="Float64"),
    Metric("n_processes", lambda r: r.final.processes),    # processes measured
    # Per process: where a max_map_count line sits in Δ terms.
    Metric("baseline_vmas", lambda r: r.baseline.map_count),
    Metric("limit", lambda r: r.limit.describe() if r.limit else None, dtype="string"),
    Metric("limit_errno", lambda r: r.limit.errno_name if r.limit else None, dtype="string"),
    Metric("limit_phase", _limit("phase"), dtype="string"),
    Metric("limit_call", _limit("call"), dtype="string"),
    Metric("limit_map_count", _limit("map_count")),
    Metric("limit_max_map_count", _limit("max_map_count")),
    Metric("extra", _json(lambda r: r.extra or None), dtype="string"),
)
METRIC = {m.column: m for m in METRICS}

# The sweep's other kinds of cell (ptengine.sweep.kinds). A figure that means what a
# METRICS column means takes that column (its name and type, `_as`), so one pivot reads
# models, logs and snapshots alike; but here it is the whole process's figure at the end
# (a replayed log) or in the listing (a snapshot), not a change against a baseline.
def _as(column, get):
    return dataclasses.replace(METRIC[column], get=get, label="")


def _syscalls(key):
    return lambda r: r.counter.as_dict()[key] if r.counter is not None else None


# A replayed strace log: trace.replay's Result (as recorded, or rewritten to markers).
TRACE_METRICS = (
    _as("vmas", lambda r: r.final["map_count"]),
    _as("peak_vmas", lambda r: r.peak_map_count),
    _as("maps_lines", lambda r: len(r.mm.maps().splitlines()) if r.mm is not None else 0),
    _as("vm_pte_bytes", lambda r: r.final["VmPTE"] * 1024),
    _as("vma_slab_bytes", lambda r: r.final["map_count"] * VMA_STRUCT_BYTES),
    _as("syscalls", _syscalls("total")),
    _as("syscalls_write_locked", _syscalls("write_locked")),
    _as("syscalls_read_locked", _syscalls("read_locked")),
    _as("syscalls_unlocked", _syscalls("unlocked")),
    _as("process_madvise_iovecs", _syscalls("process_madvise_iovecs")),
    _as("syscalls_by_name", _json(_syscalls("by_name"))),
    _as("failed_calls", _json(lambda r: _syscalls("failed")(r) or None)),
    Metric("calls", lambda r: r.calls),                    # the followed mm's calls
    Metric("replayed", lambda r: r.replayed),
    Metric("not_replayed", lambda r: r.not_replayed_total),
    Metric("not_replayed_by_reason", _json(lambda r: dict(r.not_replayed) or None),
           dtype="string"),
    Metric("mismatches", lambda r: len(r.mismatches)),     # results differing from the log
    Metric("reordered", lambda r: len(r.reordered)),
    Metric("rewrites", _json(lambda r: dict(r.rewrites) or None), dtype="string"),
)

# A maps snapshot under whatif: (its report, "now" or "markers").
SNAPSHOT_METRICS = (
    _as("vmas", lambda s: s[0][f"vmas_{s[1]}"]),
    _as("vm_pte_bytes", lambda s: s[0][f"pte_bytes_{s[1]}"]),
    _as("vma_slab_bytes", lambda s: s[0][f"vmas_{s[1]}"] * VMA_STRUCT_BYTES),
    Metric("guards", lambda s: s[0]["guards"]),            # PROT_NONE VMAs by verdict
    Metric("reservations", lambda s: s[0]["reservations"]),
    Metric("unclassified", lambda s: s[0]["unclassified"]),
    Metric("conversion_failures", lambda s: s[0]["conversion_failures"]),
    Metric("headroom", lambda s: s[0][f"headroom_{s[1]}"]),   # max_map_count - vmas
    Metric("vm_pte_from", lambda s: s[0]["pte_now_from"], dtype="string"),
)


def kind_columns(metrics):
    """{column: pandas type} of a kind's metrics that METRICS does not define."""
    return {m.column: m.dtype for m in metrics if m.column not in METRIC}


# Who ran: these, then the model's parameters, then the metrics.
IDENTITY = ("workload", "strategy", "backend", "scale_param", "scale")


def identity(workload, strategy, backend, params):
    """The leading columns of a row: the run's identity and every parameter of the model."""
    wl = get(workload)
    row = dict(workload=wl.name, strategy=str(strategy), backend=backend,
               scale_param=wl.scale, scale=params[wl.scale])
    row.update(params)
    return row


def result_row(result):
    """One run as a flat dict: identity, parameters, every metric."""
    row = identity(result.workload, result.strategy, result.backend, result.params)
    row.update((m.column, m.get(result)) for m in METRICS)
    return row


def frame(rows, front=IDENTITY, tail=None):
    """Rows (dicts) -> a pandas DataFrame: the `front` columns, the model parameters (as
    they first appear), every metric, then `tail` ({column: pandas type}). Types are
    nullable (a parameter one workload has and another lacks stays an integer column,
    <NA> where absent; a failed run has no figures), so Parquet stores what it reads."""
    import pandas as pd
    df = pd.DataFrame(list(rows)).convert_dtypes()
    types = {m.column: m.dtype for m in METRICS} | dict(tail or {})
    params = [c for c in df.columns if c not in front and c not in types]
    return df.reindex(columns=list(front) + params + list(types)).astype(types)


def write(df, path):
    """Write a table as Parquet or CSV, chosen by the file's extension."""
    path = str(path)
    if path.endswith(".csv"):
        df.to_csv(path, index=False)
    elif path.endswith((".parquet", ".pq")):
        df.to_parquet(path, index=False)
    else:
        raise ValueError(f"{path}: a table is written as .parquet or .csv")


def reserved_columns():
    """Column names a model parameter must not take (it would overwrite a figure)."""
    return set(IDENTITY) | set(METRIC)
