"""Rendering comparison results: text tables, JSON, and plots against scale."""
import json

from .. import __version__
from .metrics import VMA_STRUCT_BYTES
from .registry import get
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
    """(label, [cell per strategy], show_change) rows of one table."""
    d = [r.delta for r in results]
    rows = [
        ("VMAs (map_count Δ)", [x.map_count for x in d], True, "{:,}"),
        ("  closed form (§2)", [r.expected_vmas for r in results], False, "{:,}"),
        ("  peak during run Δ", [r.peak_map_count for r in results], True, "{:,}"),
        ("/proc maps lines Δ", [x.maps_lines for x in d], True, "{:,}"),
        ("VmPTE Δ", [x.vm_pte_kb * 1024 for x in d], True, "bytes"),
        (f"VMA slab est. (×{VMA_STRUCT_BYTES} B)", [x.map_count * VMA_STRUCT_BYTES for x in d],
         True, "bytes"),
        ("syscalls", [r.syscalls["total"] for r in results], True, "{:,}"),
        ("  mmap_lock write", [r.syscalls["write_locked"] for r in results], True, "{:,}"),
        ("  mmap_lock read", [r.syscalls["read_locked"] for r in results], True, "{:,}"),
        ("wall time (sim)", [r.wall_time for r in results], True, "{:.3f} s"),
    ]
    return rows


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
        ld = [x.delta for x in live]
        rows += [("live: VMAs Δ", [x.map_count for x in ld], True, "{:,}"),
                 ("live: VmPTE Δ", [x.vm_pte_kb * 1024 for x in ld], True, "bytes"),
                 ("live: wall time", [x.wall_time for x in live], True, "{:.3f} s")]
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


def plot(groups, path):
    """VMAs and VmPTE against scale, one line per strategy (sim solid, live dashed), one
    row of two panels per workload. PNG or SVG by the file's extension."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {}               # workload -> strategy -> backend -> [(scale, vmas, pte)]
    for sim, lv in groups:
        for backend, results in (("sim", sim), ("live", lv or [])):
            for r in results:
                d = r.delta
                series.setdefault(r.workload, {}).setdefault(r.strategy, {}).setdefault(
                    backend, []).append((r.scale, d.map_count, d.vm_pte_kb * 1024))
    names = list(series)
    fig, axes = plt.subplots(len(names), 2, figsize=(11, 3.2 * len(names)), squeeze=False)
    for row, name in enumerate(names):
        wl = get(name)
        for col, (label, idx) in enumerate((("VMAs (Δ map_count)", 1), ("page tables Δ (bytes)", 2))):
            ax = axes[row][col]
            for i, (strategy, by_backend) in enumerate(series[name].items()):
                for backend, points in by_backend.items():
                    points.sort()
                    xs = [p[0] for p in points]
                    ys = [p[idx] for p in points]
                    ax.plot(xs, ys, marker="osd^v"[i % 5] if backend == "sim" else "x",
                            markersize=7 - 1.5 * i, linewidth=2.2 - 0.5 * i,
                            linestyle="-" if backend == "sim" else "--", color=f"C{i}",
                            label=f"{strategy}" + (" (live)" if backend == "live" else ""))
            if all(y >= 0 for by in series[name].values() for pts in by.values()
                   for y in (p[idx] for p in pts)):
                ax.set_ylim(bottom=0)
            ax.set_xscale("log")
            ax.set_yscale("symlog", linthresh=1 if idx == 1 else 4096)
            ax.set_xlabel(wl.scale)
            ax.set_title(f"{name}: {label}", fontsize=9)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
