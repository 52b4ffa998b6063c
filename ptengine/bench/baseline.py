"""The baseline of deterministic figures: compute, diff, check (mirrors no kernel file).

The baseline is a JSON file (bench/baseline.json of a checkout) holding one tree of figures
per section; `check` recomputes every section it can and reports each leaf that differs,
`update` rewrites the file, keeping the sections that cannot be computed here.
"""
import dataclasses
import json
from pathlib import Path

from . import Unavailable
from .callgrind import instruction_counts
from .scenarios import scenario_figures, workload_figures

FORMAT = 1

SECTIONS = {"scenarios": scenario_figures, "workloads": workload_figures,
            "instructions": instruction_counts}


def compute(sections=None, log=print):
    """The figures of this tree: {section: figures}, and the notes on sections skipped."""
    figures, notes = {}, []
    for name, func in SECTIONS.items():
        if sections is not None and name not in sections:
            continue
        log(f"computing {name} ...")
        try:
            figures[name] = func()
        except Unavailable as e:
            notes.append(f"{name}: skipped - {e}")
    return figures, notes


def flatten(tree, prefix=""):
    """{"a.b.c": leaf} for a nested dict (lists and scalars are leaves)."""
    out = {}
    for key, value in tree.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            out.update(flatten(value, path))
        else:
            out[path] = value
    return out


@dataclasses.dataclass
class Change:
    path: str
    old: object
    new: object
    MISSING = object()

    def describe(self):
        if self.old is Change.MISSING:
            return f"  + {self.path} = {self.new!r}   (new: not in the baseline)"
        if self.new is Change.MISSING:
            return f"  - {self.path} = {self.old!r}   (in the baseline, gone now)"
        text = f"  {self.path}: {self.old!r} -> {self.new!r}"
        if _number(self.old) and _number(self.new):
            d = self.new - self.old
            text += f"  ({d:+,}" + (f", {d / self.old:+.2%})" if self.old else ")")
        return text


def _number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def diff(old, new):
    """Every difference between two figure trees, in path order."""
    a, b = flatten(old), flatten(new)
    changes = []
    for path in sorted(set(a) | set(b)):
        va, vb = a.get(path, Change.MISSING), b.get(path, Change.MISSING)
        if va != vb and not (va is Change.MISSING and vb is Change.MISSING):
            changes.append(Change(path, va, vb))
    return changes


def load_baseline(path):
    with open(path) as f:
        data = json.load(f)
    if data.get("format") != FORMAT:
        raise ValueError(f"{path}: baseline format {data.get('format')!r}, expected {FORMAT}")
    return data


def write_baseline(path, figures):
    data = {"format": FORMAT,
            "about": "Deterministic figures of ptengine (ptengine/bench/). Recompute "
                     "with `ptengine bench --check`; rewrite with `ptengine bench --update`.",
            "figures": figures}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")


def check(baseline_path, *, compute_fn=compute, out=print):
    """Recompute and compare; returns the exit status."""
    try:
        baseline = load_baseline(baseline_path)["figures"]
    except FileNotFoundError:
        out(f"no baseline at {baseline_path}; create it with `ptengine bench --update`")
        return 2
    current, notes = compute_fn(sections=None, log=lambda msg: None)
    changes = []
    for section, figures in current.items():
        old = baseline.get(section)
        if old is None:
            notes.append(f"{section}: not in the baseline (run --update to add it)")
            changes.append(Change(section, Change.MISSING, "<new section>"))
            continue
        if section == "instructions" and old.get("toolchain") != figures.get("toolchain"):
            notes.append("instructions: the baseline was counted with another toolchain "
                         f"({old.get('toolchain')}; here: {figures.get('toolchain')}) - "
                         "not compared; run --update where the baseline is kept")
            continue
        changes += [dataclasses.replace(c, path=f"{section}.{c.path}")
                    for c in diff(old, figures)]
    for note in notes:
        out(f"note: {note}")
    if not changes:
        out(f"ptengine bench --check: figures match {baseline_path} "
            f"({', '.join(current) or 'nothing computed'})")
        return 0
    out(f"ptengine bench --check: {len(changes)} difference(s) from {baseline_path}:")
    for c in changes:
        out(c.describe())
    out("If these changes are intended, run `ptengine bench --update` and commit the "
        "baseline with them.")
    return 1


def update(baseline_path, *, compute_fn=compute, out=print):
    current, notes = compute_fn(sections=None, log=out)
    try:
        kept = load_baseline(baseline_path)["figures"]
    except FileNotFoundError:
        kept = {}
    for section in SECTIONS:
        if section not in current and section in kept:
            current[section] = kept[section]
            notes.append(f"{section}: kept from the old baseline")
    for note in notes:
        out(f"note: {note}")
    changes = diff(kept, current)
    write_baseline(baseline_path, current)
    out(f"wrote {baseline_path} ({len(changes)} figure(s) changed)")
    for c in changes[:200]:
        out(c.describe())
    return 0
