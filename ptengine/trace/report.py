"""What `ptengine replay` prints and writes: the text report, --check-maps, JSON, the plot
(mirrors no kernel file)."""
import json

from ..workloads.metrics import VMA_STRUCT_BYTES
from ..workloads.report import human_bytes, _pct

SHOWN = 20          # mismatches and differing lines listed in the text report


def check_maps(result, text):
    """Compare a maps dump with the simulation: with the text the replay gave the read()s
    that produced it, if the program read it itself (its logged text is the dump), else
    with the final state. Returns (lines in the dump, lines differing, [(line, dump, sim)]),
    the gate line included as the kernel prints it."""
    expected = text.splitlines()
    simulated = None
    for dump in result.maps_dumps:
        if not dump.truncated and dump.logged_text.splitlines() == expected:
            simulated = dump.simulated_text.splitlines()
    if simulated is None:
        simulated = result.mm.maps().splitlines()
    differing = []
    for k in range(max(len(expected), len(simulated))):
        a = expected[k] if k < len(expected) else None
        b = simulated[k] if k < len(simulated) else None
        if a != b:
            differing.append((k + 1, a, b))
    return len(expected), len(differing), differing


def format_text(log, result, maps_check=None):
    r = result
    out = [f"replay of {log}: {r.calls:,} address-space calls, {r.replayed:,} replayed, "
           f"{r.not_replayed_total:,} not replayed"
           + (f" (faults: {r.faults})" if r.faults != "first-write" else "")]
    for line, path in r.images:
        out.append(f"  image from line {line}: {path}")
    if r.other_processes:
        out.append(f"  {r.other_processes:,} calls of child processes with their own mm "
                   f"(not followed)")
    if r.no_vma_effect:
        out.append(f"  {r.no_vma_effect:,} calls that change no VMA (memory policy, pkeys)")
    for reason, n in sorted(r.not_replayed.items()):
        out.append(f"  NOT REPLAYED {n:,} × {reason}")
    for moved, before in r.reordered:
        out.append(f"  order: line {moved} ran before line {before} (completion order "
                   f"did not reproduce the log)")
    out.append(f"  /proc maps reads checked: {r.maps_reads}")
    out.append(f"mismatches: {len(r.mismatches)}")
    for m in r.mismatches[:SHOWN]:
        out.append(f"  {m.describe()[:300]}")
    if len(r.mismatches) > SHOWN:
        out.append(f"  ... {len(r.mismatches) - SHOWN} more (--json lists all)")
    final = r.final
    out.append(f"VMAs: final {final['map_count']:,}, peak {r.peak_map_count:,}; "
               f"VmPTE {final['VmPTE']:,} kB")
    if r.counter is not None:
        c = r.counter.as_dict()
        out.append(f"syscalls: {c['total']:,} (mmap_lock write {c['write_locked']:,}, "
                   f"read {c['read_locked']:,}, none {c['unlocked']:,})")
        out.append("  " + ", ".join(f"{k} {v:,}" for k, v in c["by_name"].items()))
    if maps_check is not None:
        lines, differing, diffs = maps_check
        out.append(f"maps check: {lines} lines, {differing} differing")
        for k, a, b in diffs[:SHOWN]:
            out.append(f"  line {k}:\n    dump:   {a}\n    replay: {b}")
    return "\n".join(out)


def format_side_by_side(labels, results):
    """As recorded and rewritten, side by side (as `ptengine compare` prints strategies)."""
    rows = [("VMAs (final)", [r.final["map_count"] for r in results], "{:,}"),
            ("  peak", [r.peak_map_count for r in results], "{:,}"),
            ("VmPTE", [r.final["VmPTE"] * 1024 for r in results], "bytes"),
            (f"VMA slab est. (×{VMA_STRUCT_BYTES} B)",
             [r.final["map_count"] * VMA_STRUCT_BYTES for r in results], "bytes"),
            ("syscalls", [r.counter.total for r in results], "{:,}"),
            ("  mmap_lock write", [r.counter.by_lock["write"] for r in results], "{:,}"),
            ("  mmap_lock read", [r.counter.by_lock["read"] for r in results], "{:,}"),
            ("results differing from the log", [len(r.mismatches) for r in results], "{:,}")]
    width = max(len(l) for l, _, _ in rows) + 2
    head = "".ljust(width) + "".join(f"{l:>22}" for l in labels)
    out = [head]
    for label, values, fmt in rows:
        cells = []
        for k, v in enumerate(values):
            text = human_bytes(v) if fmt == "bytes" else fmt.format(v)
            if k:
                text += f" ({_pct(v, values[0])})"
            cells.append(f"{text:>22}")
        out.append(label.ljust(width) + "".join(cells))
    for label, r in zip(labels[1:], results[1:]):
        if r.rewrites:
            out.append(f"{label}: " + ", ".join(f"{k} {v:,}" for k, v in
                                                sorted(r.rewrites.items())))
    return "\n".join(out)


def to_json(result, maps_check=None, rewritten=None):
    r = result
    doc = {"calls": r.calls, "replayed": r.replayed, "not_replayed": r.not_replayed_total,
           "not_replayed_by_reason": dict(r.not_replayed),
           "mismatches": [m.as_dict() for m in r.mismatches],
           "reordered": [{"line": a, "before_line": b} for a, b in r.reordered],
           "maps_checked": maps_check is not None,
           "maps_lines": maps_check[0] if maps_check else 0,
           "maps_lines_differing": maps_check[1] if maps_check else 0,
           "maps_reads_checked": r.maps_reads,
           "peak_map_count": r.peak_map_count, "final": r.final,
           "images": [{"line": l, "path": p} for l, p in r.images],
           "other_processes_calls": r.other_processes, "faults": r.faults,
           "syscalls": r.counter.as_dict() if r.counter else {},
           "vma_counts": r.vma_counts}
    if rewritten:
        doc["rewrite"] = {name: {k: v for k, v in to_json(x).items() if k != "vma_counts"}
                          | {"rewrites": dict(x.rewrites)} for name, x in rewritten.items()}
    return doc


def write_json(path, doc):
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


def plot(runs, path):
    """VMA count after each replayed call, one line per run ({label: Result})."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 4))
    for label, r in runs.items():
        ax.plot(range(1, len(r.vma_counts) + 1), r.vma_counts, label=label, linewidth=1)
    ax.set_xlabel("address-space call")
    ax.set_ylabel("VMAs (map_count)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
