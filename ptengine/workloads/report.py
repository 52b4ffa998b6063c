"""Rendering comparison results: text tables, JSON, and the rows of a results table
(mirrors no kernel file)."""
import json

from .. import __version__
from .metrics import VMA_STRUCT_BYTES
from .registry import get
from .table import METRIC, METRICS, result_row
from .runner import call_mismatches

JSON_SCHEMA = "ptengine.compare/1"


def human_bytes(n):
    sign = "-" if n < 0 else ""
    n = abs(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{sign}{n:.0f} {unit}" if unit == "B" or n == int(n) else f"{sign}{n:.1f} {unit}"
        n /= 1024


def _pct(value, base):
    if base == value:
        return "±0%"
    if not base:
        return "new"
    return f"{(value - base) / abs(base) * 100:+.1f}%"


def param_text(params):
    out = []
    for k, v in params.items():
        if isinstance(v, int) and not isinstance(v, bool) and v >= 4096 and v % 1024 == 0:
            v = human_bytes(v).replace(" ", "")
        out.append(f"{k}={v}")
    return " ".join(out)


def mismatches(sim, live):
    """What the host kernel measured differently from the simulation: VMAs, VmPTE, the
    limit hit, syscall counts and each call's result."""
    out = []
    s, l = sim.delta, live.delta
    if s.map_count != l.map_count:
        out.append(f"VMAs: sim {s.map_count:+,} vs live {l.map_count:+,}")
    if s.vm_pte_kb != l.vm_pte_kb:
        out.append(f"VmPTE: sim {human_bytes(s.vm_pte_kb * 1024)} vs live "
                   f"{human_bytes(l.vm_pte_kb * 1024)}")
    if (sim.limit is None) != (live.limit is None):
        out.append(f"limit: sim {sim.limit.describe() if sim.limit else 'none'} vs live "
                   f"{live.limit.describe() if live.limit else 'none'}")
    return out + call_mismatches(sim, live)


def _rows(results):
    """(label, [cell per strategy], show_change, format) rows of one table."""
    return [(m.label, [m.get(r) for r in results], m.change, m.fmt) for m in METRICS if m.label]


def _cell(value, fmt):
    if value is None:
        return "—"
    if fmt == "bytes":
        return human_bytes(value)
    return fmt.format(value)


def format_table(results, live=None):
    """One workload at one scale: strategies side by side, change vs the first column."""
    first = results[0]
    wl = get(first.workload)
    title = f"{wl.name} ({wl.alias})  {wl.scale}={first.scale:,}" if wl.alias else \
        f"{wl.name}  {wl.scale}={first.scale:,}"
    lines = [f"== {title} — {wl.summary}", f"   {param_text(first.params)}"]
    rows = _rows(results)
    if live:
        rows += [(f"live: {label}", [METRIC[column].get(x) for x in live], True,
                  METRIC[column].fmt)
                 for column, label in (("vmas", "VMAs Δ"), ("vm_pte_bytes", "VmPTE Δ"),
                                       ("batch_time_s", "kernel time, one batch (server loop)"),
                                       ("wall_time_s", "time, per call (socket round trips)"))]
    header = [""] + [r.strategy for r in results]
    table = []
    for label, values, change, fmt in rows:
        if all(v is None for v in values):
            continue
        cells = [label]
        for i, v in enumerate(values):
            text = _cell(v, fmt)
            if change and i and v is not None and values[0] is not None:
                text += f" ({_pct(v, values[0])})"
            cells.append(text)
        table.append(cells)
    limits = [r.limit.describe() if r.limit else "—" for r in results]
    widths = [max(len(row[i]) for row in table + [header]) for i in range(len(header))]
    fmt_row = lambda row: "  ".join(  # noqa: E731
        [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])])
    lines.append("   " + fmt_row(header))
    lines.extend("   " + fmt_row(row) for row in table)
    for r, text in zip(results, limits):
        if r.limit:
            lines.append(f"   LIMIT {r.strategy}: {text}")
    if any(r.batch_ns is not None for r in results + list(live or [])):
        lines.append("   times: 'per call' runs the model, each call through the API (live: "
                     "a socket round trip each); 'one batch' runs the same calls as one array "
                     "in the backend's executor (simulator: its C loop; live: the server's "
                     "loop, the kernel's own cost)")
    notes = {}                  # one line per reason, naming the runs it applies to
    for r in results + list(live or []):
        if r.batch_note:
            notes.setdefault(r.batch_note, []).append(f"{r.strategy} [{r.backend}]")
    for note, runs in notes.items():
        lines.append(f"   note {', '.join(runs)}: no batch time: {note}")
    for r in results:
        for key, value in r.extra.items():
            lines.append(f"   note {r.strategy}: {key} = {value}")
        if r.syscalls.get("failed"):
            lines.append(f"   failed calls {r.strategy}: " +
                         ", ".join(f"{k} ×{v}" for k, v in r.syscalls["failed"].items()))
    if live:
        for s, l in zip(results, live):
            for problem in mismatches(s, l):
                lines.append(f"   !!! SIM/LIVE MISMATCH [{s.strategy}] {problem}")
    return "\n".join(lines)


def to_json(groups, *, live=False):
    """groups: [(sim_results, live_results_or_None)] -> the JSON document (a dict)."""
    runs = []
    for sim, lv in groups:
        for i, r in enumerate(sim):
            d = r.as_dict()
            if lv:
                d["live"] = lv[i].as_dict()
                d["mismatch"] = mismatches(r, lv[i])
            else:
                d["live"] = None
                d["mismatch"] = []
            runs.append(d)
    return {"schema": JSON_SCHEMA, "ptengine_version": __version__,
            "vma_struct_bytes": VMA_STRUCT_BYTES,
            "vma_struct_source": "vm_area_struct objsize in /proc/slabinfo, Linux 6.18.44 x86-64",
            "live": live, "runs": runs}


def write_json(path, doc):
    with open(path, "w") as f:
        json.dump(doc, f, indent=2, default=str)
        f.write("\n")


def rows(groups):
    """groups: [(sim_results, live_results_or_None)] -> one table row per run (table.py)."""
    return [result_row(r) for sim, lv in groups for r in list(sim) + list(lv or [])]
