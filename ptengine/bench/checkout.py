"""Where `ptengine bench` finds the checkout it checks (mirrors no kernel file).

The baseline (bench/baseline.json), the benchmark suite (bench/) and pytest-benchmark's
saved runs (.benchmarks/) live in a source checkout, not in the package: installed from a
wheel, the package's parent folder is site-packages. So the checkout is the working
directory or the nearest folder above it holding pyproject.toml, as git finds its
repository; outside one, the caller names the files itself (--baseline, --storage).
"""
from pathlib import Path

from . import Unavailable


def find(start=None):
    """The checkout holding `start` (default: the working directory), or Unavailable."""
    here = Path.cwd() if start is None else Path(start)
    here = here.resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file():
            return folder
    raise Unavailable(f"{here} is not inside a source checkout (no pyproject.toml in it or "
                      "above it)")


def baseline_path(start=None):
    """bench/baseline.json of the checkout holding `start` (it need not exist yet)."""
    return find(start) / "bench" / "baseline.json"
