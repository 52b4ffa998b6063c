"""Figures from a results table (table.py): what markers change, and how it scales
(mirrors no kernel file).

One figure, drawn for `ptengine compare --plot` and `ptengine sweep --plot` alike:
- on top, the summary: per workload at its largest size, the change in VMAs and in
  page-table bytes that each marker strategy brings against PROT_NONE guards;
- below, per workload, VMAs and page-table bytes against its scale parameter, one line
  per strategy (and per value of any other parameter the table varies), with the
  max_map_count limit drawn where a run reached it.
Ticks are the data's own values or round numbers written out (1,000, 64 KiB), never
`2×10^0`; a metric that is 0 everywhere for a workload is said in words, not plotted.
"""
import math

from .blocks import Strategy
from .report import human_bytes, param_text
from .registry import get

PANELS = (("vmas", "VMAs Δ", False), ("vm_pte_bytes", "page tables Δ", True))
STRATEGY_ORDER = ("prot_none", "guard", "guard_batched")


def count_text(v):
    v = float(v)
    if abs(v) >= 1e6:
        return f"{v / 1e6:g}M"
    return f"{v:,.0f}" if v == int(v) else f"{v:g}"


def bytes_text(v):
    return "0" if v == 0 else human_bytes(v).replace(".0 ", " ")


def _ladder(lo, hi, base, steps):
    """Values base**k * s for s in steps, within [lo, hi] (lo > 0)."""
    out = []
    k = math.floor(math.log(lo, base)) - 1
    while base ** k <= hi * base:
        out.extend(base ** k * s for s in steps if lo <= base ** k * s <= hi)
        k += 1
    return sorted(set(out))


def nice_ticks(lo, hi, in_bytes, at_least=3):
    """A few round values in [lo, hi] (lo > 0) for a log axis: powers of 1024 or of 10
    first, finer ladders when the range is narrow; at most six."""
    ladders = (((1024, (1, 32)), (2, (1,)), (2, (1, 1.5))) if in_bytes else
               ((10, (1,)), (10, (1, 2, 5)), (10, range(1, 10))))
    ticks = []
    for base, steps in ladders:
        ticks = _ladder(lo, hi, base, steps)
        if len(ticks) >= at_least:
            break
    return ticks[:: math.ceil(len(ticks) / 6)] if ticks else ticks


def _format_axis(axis, values, in_bytes, prefer_data):
    """A readable axis for these values: linear from 0 when they lie within a factor of
    10 of each other, else log (symlog when 0 is among them); ticks are the data's own
    values (prefer_data, up to 8 of them) or round numbers, labelled in full."""
    from matplotlib.ticker import (FixedLocator, FuncFormatter, MaxNLocator, MultipleLocator,
                                   NullFormatter, NullLocator)
    values = sorted({float(v) for v in values})
    positive = [v for v in values if v > 0]
    if not positive:
        return
    lo, hi = min(positive), max(positive)
    set_scale = getattr(axis.axes, f"set_{axis.axis_name}scale")
    set_lim = getattr(axis.axes, f"set_{axis.axis_name}lim")
    text = bytes_text if in_bytes else count_text
    if prefer_data and len(values) <= 8:
        set_scale("log")
        pad = max((hi / lo) ** 0.05, 1.2)
        set_lim(lo / pad, hi * pad)
        axis.set_major_locator(FixedLocator(values))
    elif hi / lo < 10 and values[0] >= 0:
        set_scale("linear")
        set_lim(0, hi * 1.15)
        if in_bytes:                  # a power-of-two step giving 3 to 6 ticks
            step = 2 ** math.floor(math.log2(hi / 3))
            axis.set_major_locator(MultipleLocator(step))
        else:
            axis.set_major_locator(MaxNLocator(nbins=5, integer=True))
    else:
        pad = max((hi / lo) ** 0.08, 1.5)
        if values[0] <= 0:
            # Zero has no place on a log axis: a linear stretch up to one page of page
            # tables (or one VMA) holds it.
            thresh = 4096 if in_bytes else 1
            set_scale("symlog", linthresh=thresh, linscale=0.5)
            set_lim(values[0], hi * pad)
            ticks = [v for v in values if v <= 0] + nice_ticks(thresh, hi * pad, in_bytes)
        else:
            set_scale("log")
            set_lim(lo / pad, hi * pad)
            ticks = nice_ticks(lo / pad, hi * pad, in_bytes) or [lo, hi]
        axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: text(v)))
    axis.set_minor_locator(NullLocator())
    axis.set_minor_formatter(NullFormatter())


def sign(v):
    return "−" if v < 0 else "+" if v > 0 else ""


def _ok(table):
    """The rows with figures (failed runs carry an error and no metrics)."""
    return table[table["vmas"].notna()] if "vmas" in table else table.iloc[0:0]


def _variants(rows, wl):
    """The columns other than the scale parameter that vary in this workload's rows."""
    cols = [k for k in wl.defaults if k != wl.scale and k in rows]
    if "max_map_count" in rows:
        cols.append("max_map_count")
    return [c for c in cols if rows[c].nunique(dropna=False) > 1]


def _series(rows, wl):
    """{(strategy, backend, variant text): rows sorted by scale}, medians over repetitions."""
    variants = _variants(rows, wl)
    keys = ["strategy", "backend"] + variants
    out = {}
    for key, grp in rows.groupby(keys, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        text = param_text(dict(zip(variants, key[2:])))
        pts = grp.groupby("scale", sort=True).agg(
            vmas=("vmas", "median"), vm_pte_bytes=("vm_pte_bytes", "median"),
            limit=("limit_errno", lambda s: s.notna().any()),
            limit_line=("limit_max_map_count", "max"), baseline=("baseline_vmas", "max"),
            processes=("n_processes", "max"))
        out[(key[0], key[1], text)] = pts
    order = {s: i for i, s in enumerate(STRATEGY_ORDER)}
    return dict(sorted(out.items(), key=lambda kv: (kv[0][1] != "sim", order.get(kv[0][0], 9),
                                                    kv[0][2])))


def _workload_panels(axes, rows, wl):
    series = _series(rows, wl)
    for ax, (column, title, in_bytes) in zip(axes, PANELS):
        values = rows[column].astype(float)
        if (values == 0).all():
            ax.axis("off")
            ax.text(0.5, 0.5, f"{wl.name}: {title} is 0\nat every size and strategy",
                    ha="center", va="center", fontsize=10, transform=ax.transAxes)
            continue
        strategies = list(dict.fromkeys(k[0] for k in series))
        variants = list(dict.fromkeys(k[2] for k in series))
        drawn = {}
        for (strategy, backend, text), pts in series.items():
            # Colour and size by strategy (a line hidden under an equal one still shows
            # at its edges), marker and dashes by variant, dashes for the host kernel.
            i, v = strategies.index(strategy), variants.index(text)
            ys = tuple(pts[column])
            label = " ".join(x for x in (strategy, "(live)" if backend != "sim" else "", text) if x)
            same = drawn.get((backend, text, ys))
            if same:
                label += f" (= {same})"
            drawn.setdefault((backend, text, ys), strategy)
            ax.plot(pts.index, ys, marker="osd^v"[(i + v) % 5] if len(ys) <= 20 else None,
                    markersize=7 - 1.5 * i,
                    linewidth=2.2 - 0.5 * i, color=f"C{i}", label=label,
                    linestyle="--" if backend != "sim" else ("-", "-.", ":", (0, (5, 1)))[v % 4])
            hit = pts[pts["limit"]]
            if column == "vmas" and len(hit):
                ax.plot(hit.index, hit[column], "X", color="red", markersize=10, zorder=5)
        all_y = list(values)
        if column == "vmas":
            all_y += _limit_lines(ax, series)
        _format_axis(ax.xaxis, rows["scale"], False, prefer_data=True)
        _format_axis(ax.yaxis, all_y, in_bytes, prefer_data=False)
        ax.set_xlabel(wl.scale, fontsize=9)
        ax.set_title(f"{wl.name}: {title}", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=7, loc="best")


def _limit_lines(ax, series):
    """Draw max_map_count (in Δ terms of one process) where a run stopped at it."""
    out = []
    for pts in series.values():
        hit = pts[pts["limit"] & pts["limit_line"].notna() & (pts["processes"] == 1)]
        for _, r in hit.iterrows():
            y = float(r["limit_line"] - r["baseline"])
            if y in out:
                continue
            ax.axhline(y, color="red", linestyle=(0, (1, 1)), linewidth=1.2,
                       label=f"max_map_count {int(r['limit_line']):,} (X: run stopped)")
            out.append(y)
    return out


def _summary(axes, table, workloads):
    """Per workload at its largest size: each marker strategy's change against prot_none."""
    sim = table[table["backend"] == "sim"]
    bars = []                                    # (workload, strategy, column, before, after)
    for name in workloads:
        rows = sim[sim["workload"] == name]
        top = rows[rows["scale"] == rows["scale"].max()]
        if top.empty:                            # only host-kernel runs of this one
            continue
        first = top.iloc[0]
        variants = _variants(rows, get(name))
        # Where other parameters vary too, the summary shows the first variant.
        same = top[(top[variants] == first[variants]).all(axis=1)] if variants else top
        med = same.groupby("strategy")[["vmas", "vm_pte_bytes"]].median()
        if "prot_none" not in med.index:
            continue
        for s in med.index:
            if Strategy(s).markers:
                for column, _, _ in PANELS:
                    bars.append((f"{name}\n{get(name).scale}={int(first['scale']):,}", s, column,
                                 med.loc["prot_none", column], med.loc[s, column]))
    handles = {}
    for ax, (column, title, in_bytes) in zip(axes, PANELS):
        mine = [b for b in bars if b[2] == column]
        if not mine:
            ax.axis("off")
            ax.text(0.5, 0.5, "no prot_none runs to compare against", ha="center",
                    transform=ax.transAxes)
            continue
        labels = list(dict.fromkeys(b[0] for b in mine))
        strategies = list(dict.fromkeys(b[1] for b in mine))
        height = 0.8 / len(strategies)
        text = bytes_text if in_bytes else count_text
        changes = []
        for b_label, strategy, _, before, after in mine:
            j = strategies.index(strategy)
            y = labels.index(b_label) + (j - (len(strategies) - 1) / 2) * height
            change = after - before
            changes.append(change)
            i = STRATEGY_ORDER.index(strategy) if strategy in STRATEGY_ORDER else j + 1
            handles[strategy] = ax.barh(y, change, height=height * 0.9, color=f"C{i}")
            ax.annotate(f"{sign(change)}{text(abs(change))} ({text(before)} → {text(after)})",
                        (change, y), fontsize=7,
                        va="center", ha="left" if change >= 0 else "right",
                        xytext=(3 if change >= 0 else -3, 0), textcoords="offset points")
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.axvline(0, color="black", linewidth=0.8)
        _symmetric_axis(ax, changes, in_bytes)
        ax.set_title(f"{title} that markers bring vs prot_none, at each workload's "
                     f"largest size", fontsize=10)
        ax.grid(True, axis="x", alpha=0.3)
    if bars:
        axes[0].figure.legend(list(handles.values()), list(handles), loc="outside lower center",
                              ncol=len(handles), fontsize=8)


def _symmetric_axis(ax, values, in_bytes):
    """symlog x axis over negative and positive changes, ticks at round values both ways."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator
    text = bytes_text if in_bytes else count_text
    mags = [abs(v) for v in values if v]
    if not mags:
        return
    thresh = 4096 if in_bytes else 1
    ax.set_xscale("symlog", linthresh=thresh, linscale=0.3)
    hi = max(mags)
    span = hi * 40                     # room for the bars' notes
    pos = nice_ticks(thresh, span, in_bytes) or [hi]
    ticks = ([0.0] + (pos if max(values) > 0 else [])
             + ([-t for t in pos] if min(values) < 0 else []))
    ax.xaxis.set_major_locator(FixedLocator(sorted(ticks)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: sign(v) + text(abs(v))))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlim(-span if min(values) < 0 else -thresh, span if max(values) > 0 else thresh)
    ax.tick_params(axis="x", labelsize=8)


def plot(table, path):
    """Write the figure for a results table (a DataFrame of table.py rows) to `path`
    (.png, .svg or .pdf by its extension)."""
    import matplotlib.pyplot as plt
    fig = figure(table)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def figure(table):
    """The figure for a results table, as a matplotlib Figure (Agg backend)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = _ok(table)
    workloads = list(dict.fromkeys(ok["workload"].dropna())) if len(ok) else []
    if not workloads:
        raise ValueError("no successful workload runs in the table: nothing to plot")
    per_row = 2                                   # workloads side by side
    grid_rows = math.ceil(len(workloads) / per_row)
    summary_h = 1.2 + 0.5 * len(workloads)
    fig = plt.figure(figsize=(16, summary_h + 3.2 * grid_rows), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[summary_h, 3.2 * grid_rows])
    _summary(top.subplots(1, 2), ok, workloads)
    axes = bottom.subplots(grid_rows, 2 * per_row, squeeze=False)
    for k, name in enumerate(workloads):
        row, col = divmod(k, per_row)
        _workload_panels(axes[row][2 * col: 2 * col + 2], ok[ok["workload"] == name], get(name))
    for k in range(len(workloads), grid_rows * per_row):
        row, col = divmod(k, per_row)
        for ax in axes[row][2 * col: 2 * col + 2]:
            ax.axis("off")
    return fig
