"""A sweep's SPEC: TOML read with tomllib, checked whole, expanded into jobs
(mirrors no kernel file).

A SPEC is a list of grids. Each grid names what it runs with one kind key (`workloads`,
`traces` or `snapshots`: kinds.py), the values of their parameters, strategies,
repetitions and max_map_count; top-level `strategies`, `repetitions` and `max_map_count`
are the defaults of every grid. A value is one value, a list of values, or a range:
`{ log_range = [1, 100000] }` (1, 10, ..., 100,000; `factor = 2` for doublings; the
upper bound is always included) or
`{ range = [0, 100, 25] }` (0, 25, ..., 100: the stop is included). Every error is found
before anything runs and names the SPEC's line.
"""
import dataclasses
import math
import os
import re

try:
    import tomllib
except ModuleNotFoundError:          # Python 3.10: the same parser as a package
    import tomli as tomllib

from ..workloads import Strategy, parse_int

GRID_KEYS = ("strategies", "repetitions", "max_map_count")   # also top-level defaults
DEFAULTS = {"strategies": ["prot_none", "guard", "guard_batched"], "repetitions": 1,
            "max_map_count": 65530}


class SpecError(ValueError):
    """A SPEC that cannot run, with the line it is about (when the SPEC was text)."""

    def __init__(self, message, line=None, source="SPEC"):
        self.message, self.line, self.source = message, line, source
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {message}")


class Spec:
    """A parsed SPEC and where its keys are written, to name lines in errors."""

    def __init__(self, doc, text=None, source="SPEC"):
        self.doc, self.text, self.source = doc, text, source
        self._lines = text.splitlines() if text is not None else []
        # Where each [[grid]] table starts, and where any table header is.
        self._grids = [i for i, l in enumerate(self._lines)
                       if re.match(r"\s*\[\[\s*grid\s*\]\]", l)]
        self._headers = [i for i, l in enumerate(self._lines) if re.match(r"\s*\[", l)]

    def line(self, grid=None, key=None):
        """1-based line of `key` in grid number `grid` (0-based; None: top level), or of
        the grid's header without a key; None when unknown (a dict SPEC)."""
        if not self._lines:
            return None
        if grid is not None and grid < len(self._grids):
            start = self._grids[grid]
            end = next((h for h in self._headers if h > start), len(self._lines))
        else:
            start, end = -1, (self._headers[0] if self._headers else len(self._lines))
        if key is None:
            return start + 1 if start >= 0 else None
        pattern = re.compile(rf"\s*([\"']?){re.escape(key)}\1\s*=")
        for i in range(start + 1, end):
            if pattern.match(self._lines[i]):
                return i + 1
        # An inline `grid = [{...}]` array: at least name the line that holds the key.
        for i, l in enumerate(self._lines):
            if re.search(rf"\b{re.escape(key)}\s*=", l):
                return i + 1
        return start + 1 if start >= 0 else None

    def error(self, message, grid=None, key=None):
        where = f"grid {grid + 1}: " if grid is not None else ""
        return SpecError(where + message, self.line(grid, key), self.source)


def load(spec):
    """A Spec from a path (os.PathLike, or a str naming a file: no newline, no '='), TOML
    text (any other str), or an already parsed dict."""
    if isinstance(spec, Spec):
        return spec
    if isinstance(spec, dict):
        return Spec(spec)
    if isinstance(spec, os.PathLike) or (isinstance(spec, str) and "\n" not in spec
                                         and "=" not in spec):
        with open(spec) as f:
            return parse(f.read(), os.fspath(spec))
    if isinstance(spec, str):
        return parse(spec)
    raise TypeError(f"a SPEC is a path, TOML text or a dict, not {type(spec).__name__}")


def parse(text, source="SPEC"):
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"at line (\d+)", str(e))
        line = int(m.group(1)) if m else len(text.splitlines()) if "end of document" in str(e) \
            else None
        raise SpecError(f"not valid TOML: {e}", line, source) from None
    return Spec(doc, text, source)


# --- values ---------------------------------------------------------------------------
def values_of(spec, raw, grid, key):
    """The list of values a SPEC entry stands for (one value, a list, or a range)."""
    if isinstance(raw, dict):
        if "log_range" in raw:
            return _log_range(spec, raw, grid, key)
        if "range" in raw:
            return _range(spec, raw, grid, key)
        raise spec.error(f"{key}: a table value is {{ log_range = [lo, hi] }} or "
                         f"{{ range = [start, stop, step] }}, got {raw}", grid, key)
    out = list(raw) if isinstance(raw, list) else [raw]
    if not out:
        raise spec.error(f"{key}: empty list, the grid would have no cells", grid, key)
    return out


def _bounds(spec, raw, name, grid, key, n):
    b = raw[name]
    if not isinstance(b, list) or len(b) not in n:
        raise spec.error(f"{key}: {name} wants {' or '.join(map(str, n))} numbers, got {b!r}",
                         grid, key)
    try:
        return [parse_int(x) if not isinstance(x, bool) else None for x in b]
    except ValueError:
        raise spec.error(f"{key}: {name} wants integers, got {b!r}", grid, key) from None


def _log_range(spec, raw, grid, key):
    lo, hi = _bounds(spec, raw, "log_range", grid, key, (2,))
    factor = raw.get("factor", 10)
    if lo is None or hi is None or lo < 1 or hi < lo or not isinstance(factor, (int, float)) \
            or isinstance(factor, bool) or factor <= 1:
        raise spec.error(f"{key}: log_range wants 1 <= lo <= hi and a factor > 1, got {raw}",
                         grid, key)
    steps = int(math.floor(math.log(hi / lo, factor) + 1e-9))
    return sorted({round(lo * factor ** k) for k in range(steps + 1)} | {hi})


def _range(spec, raw, grid, key):
    b = _bounds(spec, raw, "range", grid, key, (2, 3))
    start, stop, step = (b + [1])[:3]
    if None in (start, stop, step) or step <= 0 or stop < start:
        raise spec.error(f"{key}: range wants start <= stop and a step > 0, got {raw}", grid, key)
    return list(range(start, stop + 1, step))


def typed(spec, value, like, grid, key):
    """`value` as the type of the parameter's default `like`, or a SpecError (wrong type).
    Integers also take sizes as text ("8MiB") and integral floats (1e5)."""
    ok = None
    if isinstance(like, bool):
        ok = value if isinstance(value, bool) else None
    elif isinstance(like, int):
        if isinstance(value, int) and not isinstance(value, bool):
            ok = value
        elif isinstance(value, float) and value == int(value):
            ok = int(value)
        elif isinstance(value, str):
            try:
                ok = parse_int(value)
            except ValueError:
                ok = None
    elif isinstance(like, float):
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = float(value) if number else None
    elif isinstance(like, str):
        ok = value if isinstance(value, str) else None
    if ok is None:
        kind = {bool: "true or false", int: "an integer (or a size like \"8MiB\")",
                float: "a number", str: "a string"}[type(like)]
        raise spec.error(f"{key}: wants {kind}, got {value!r}", grid, key)
    return ok


def positive_ints(spec, raw, grid, key):
    vals = values_of(spec, raw, grid, key)
    out = [typed(spec, v, 0, grid, key) for v in vals]
    bad = [v for v in out if v < 1]
    if bad:
        raise spec.error(f"{key}: wants positive integers, got {bad[0]}", grid, key)
    return out


def _meanings(runs):
    return ", ".join(f"{name} ({what})" for name, what in runs.items())


@dataclasses.dataclass
class Grid:
    """One grid's common settings, checked; `entries` are its other keys, for the kind."""
    index: int
    kind: str                     # the kind key: "workloads", "traces", "snapshots"
    sources: object               # the kind key's value
    strategies: list
    repetitions: int
    max_map_counts: list
    entries: dict                 # key -> raw value (parameters, scale, ...)


def grids(spec, kinds):
    """The SPEC's grids with their common settings checked (kinds check the rest).
    `kinds`: the cell kinds by the grid key that selects them (kinds.KINDS, which checks
    its grids with this module's helpers)."""
    doc = spec.doc
    unknown = [k for k in doc if k not in ("grid",) + GRID_KEYS]
    if unknown:
        raise spec.error(f"unknown top-level key {unknown[0]!r} (keys: grid, "
                         f"{', '.join(GRID_KEYS)})", None, unknown[0])
    raw_grids = doc.get("grid")
    if not raw_grids:
        raise spec.error("empty grid: the SPEC has no [[grid]] table")
    if not isinstance(raw_grids, list) or not all(isinstance(g, dict) for g in raw_grids):
        raise spec.error("grid must be an array of tables ([[grid]])", None, "grid")
    out = []
    for i, g in enumerate(raw_grids):
        named = [k for k in kinds if k in g]
        if len(named) != 1:
            raise spec.error(("names nothing to run: give one of " if not named else
                              "names more than one kind: give one of ")
                             + ", ".join(kinds), i, named[1] if len(named) > 1 else None)
        settings = {}
        for key in GRID_KEYS:
            own = key in g
            raw = g[key] if own else doc.get(key, DEFAULTS[key])
            at = i if own else None
            if key == "strategies":
                vals = values_of(spec, raw, at, key)
                try:
                    settings[key] = [Strategy(s).value for s in vals]
                except ValueError:
                    bad = next(s for s in vals if s not in [x.value for x in Strategy])
                    raise spec.error(f"strategies: unknown strategy {bad!r} (known: "
                                     f"{', '.join(x.value for x in Strategy)})", at, key) from None
                # A kind runs the strategies it has a meaning for (kinds.Kind.strategies):
                # a grid naming another is refused; defaults are narrowed to them.
                runs = kinds[named[0]].strategies
                if own:
                    bad = next((s for s in settings[key] if s not in runs), None)
                    if bad is not None:
                        raise spec.error(f"strategies: {named[0]} grids run "
                                         f"{_meanings(runs)}, not {bad!r}", at, key)
                settings[key] = [s for s in settings[key] if s in runs]
                if not settings[key]:
                    raise spec.error(f"strategies: none of them runs in a {named[0]} grid "
                                     f"(it runs {_meanings(runs)})", i, named[0])
            else:
                settings[key] = positive_ints(spec, raw, at, key)
        if len(settings["repetitions"]) != 1:
            raise spec.error("repetitions: one number, not a list", i, "repetitions")
        entries = {k: v for k, v in g.items() if k not in GRID_KEYS and k != named[0]}
        out.append(Grid(i, named[0], g[named[0]], settings["strategies"],
                        settings["repetitions"][0], settings["max_map_count"], entries))
    return out
