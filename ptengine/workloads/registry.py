"""The registry of workload models (mirrors no kernel file).

Name -> function, defaults, suite size, closed form, and the host profile
(ptengine.profile) of the system the model stands for."""
import dataclasses
import re

from .. import profile as host_profiles

# Profile fields every model's figures depend on: VM_MAYBE_GUARD decides the flags and
# what fork copies, the THP mode which touched ranges get 2 MiB pages (and PTE tables).
PROFILE_FIELDS = ("maybe_guard", "thp_enabled")

WORKLOADS = {}
ALIASES = {}


@dataclasses.dataclass(frozen=True)
class Workload:
    name: str
    func: object                 # func(run: Run) -> None, issues the calls on run.mm
    defaults: dict               # the software's real defaults and knobs
    small: dict                  # overrides used by the default suite (finishes fast)
    scale: str                   # the parameter `--scale` varies (the N of the model)
    summary: str
    closed_form: object = None   # closed_form(strategy, params) -> expected VMA delta | None
    alias: str = ""              # W1..W8, the model's number in workloads.md §2
    in_suite: bool = True
    profile: str = "reference"   # the machine the model runs on (a shipped profile's name)
    profile_fields: tuple = PROFILE_FIELDS   # what its figures depend on in that profile
    # Recorded into batches by default on the simulator (runner.run(batched=None)): the
    # model asks for no value back per object, so a batch holds thousands of calls. A
    # model that reads state per object (observe(), a flush per thread) would pay a
    # batch's fixed cost each time, more than its calls one by one.
    batched: bool = False

    @property
    def host_profile(self):
        return host_profiles.get(self.profile)

    def params(self, overrides=None, *, small=False):
        """Defaults, then the suite's small sizes, then `overrides`; unknown keys raise."""
        p = dict(self.defaults)
        if small:
            p.update(self.small)
        for k, v in (overrides or {}).items():
            if k not in p:
                raise KeyError(f"workload {self.name!r} has no parameter {k!r} "
                               f"(has: {', '.join(sorted(p))})")
            p[k] = coerce(v, self.defaults[k])
        return p

    def expected_vmas(self, strategy, params):
        return None if self.closed_form is None else self.closed_form(strategy, params)


def workload(name, *, scale, defaults, small=None, closed_form=None, alias="", in_suite=True,
             profile="reference", profile_fields=(), batched=False):
    """Decorator registering `func(run)` as a workload model, run under `profile`; its
    figures depend on PROFILE_FIELDS and `profile_fields` of it. `batched`: see
    Workload.batched."""
    host_profiles.get(profile)                 # an unknown name fails at import
    def register(func):
        summary = (func.__doc__ or "").strip().splitlines()[0] if func.__doc__ else name
        WORKLOADS[name] = Workload(name, func, dict(defaults), dict(small or {}), scale,
                                   summary, closed_form, alias, in_suite, profile,
                                   PROFILE_FIELDS + tuple(profile_fields), batched)
        if alias:
            ALIASES.setdefault(alias.lower(), name)
        return func
    return register


def get(name):
    key = name.lower()
    key = ALIASES.get(key, key).replace("-", "_")
    try:
        return WORKLOADS[key]
    except KeyError:
        raise KeyError(f"unknown workload {name!r}; known: {', '.join(sorted(WORKLOADS))}") from None


def suite():
    """The workloads of the default `ptengine compare` run."""
    return [w for w in WORKLOADS.values() if w.in_suite]


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$", re.I)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_int(text):
    """'100', '1e5', '8MiB', '4K', '64 KiB' -> int (sizes are binary units)."""
    text = str(text).strip().replace("_", "")
    try:
        return int(text, 0)
    except ValueError:
        pass
    m = _SIZE.match(text)
    if m:
        return int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    value = float(text)
    if value != int(value):
        raise ValueError(f"not an integer: {text!r}")
    return int(value)


def coerce(value, like):
    """Convert a command-line string to the type of the parameter's default."""
    if not isinstance(value, str):
        return value
    if isinstance(like, bool):
        low = value.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"not a boolean: {value!r}")
    if isinstance(like, int):
        return parse_int(value)
    if isinstance(like, float):
        return float(value)
    return value
