"""The syscall modules that are compiled from their Python source, and a freshness check.

These modules stay plain Python; setup.py compiles each with Cython because every
simulated syscall runs through them. Python imports a compiled module in preference to
its .py, so a .py edited after the last build would silently not run: `stale()` names
such modules and importing ptengine warns about them.
"""
import glob
import os
import warnings

# Read by setup.py: the one list of compiled .py modules.
COMPILED_PY = ("args", "errors", "mm", "mapping", "protection", "advice", "fault", "files",
               "lifecycle", "procview", "exec_layout")

HERE = os.path.dirname(os.path.abspath(__file__))


def stale():
    """Modules whose .py is newer than the compiled module built from it."""
    out = []
    for name in COMPILED_PY:
        source = os.path.join(HERE, f"{name}.py")
        built = glob.glob(os.path.join(HERE, f"{name}.*.so"))
        if built and os.path.exists(source) and \
                os.path.getmtime(source) > max(os.path.getmtime(b) for b in built):
            out.append(name)
    return out


def warn_if_stale():
    names = stale()
    if names:
        warnings.warn(f"ptengine: {', '.join(names)} changed after the last build and the "
                      f"compiled modules run the old code; rebuild with `pip install -e .`",
                      RuntimeWarning, stacklevel=3)
