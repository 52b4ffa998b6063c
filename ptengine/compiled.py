"""Which modules are compiled, and a check that every build is newer than its sources.

The page-table core, the VMA layer and the hot syscall classes are Cython (.pyx); the
other modules a syscall passes through stay plain Python and setup.py compiles each of
them as it is. Python imports a compiled module in preference to its source, so a source
edited after the last build would silently not run: `stale()` names such modules and
importing ptengine warns about them. Only a source checkout (where setup.py sits beside the
package) is checked: an installed wheel's files carry the times they were unpacked at.
"""
import glob
import os
import warnings

# Read by setup.py: the plain-Python modules it compiles (dotted below ptengine). The
# workload modules issue the syscalls of a run and count each one.
COMPILED_PY = ("args", "errors", "mm", "files", "lifecycle", "procview", "exec_layout",
               "workloads.metrics", "workloads.blocks", "workloads.runner",
               "workloads.threads", "workloads.android", "workloads.allocators",
               "workloads.fibers", "workloads.wasm")

HERE = os.path.dirname(os.path.abspath(__file__))
IN_CHECKOUT = os.path.exists(os.path.join(HERE, os.pardir, "setup.py"))


def sources():
    """{module name: the source files its build is made from (.py or .pyx, and .pxd)}."""
    out = {name: [_path(name, ".py")] for name in COMPILED_PY}
    for pyx in glob.glob(os.path.join(HERE, "*.pyx")):
        out[os.path.splitext(os.path.basename(pyx))[0]] = [pyx]
    for name, files in out.items():
        pxd = _path(name, ".pxd")
        if os.path.exists(pxd):
            files.append(pxd)
    return out


def _path(name, suffix):
    return os.path.join(HERE, *name.split(".")) + suffix


def stale():
    """Modules with a source newer than the compiled module built from it, sorted (none
    outside a source checkout)."""
    out = []
    if not IN_CHECKOUT:
        return out
    for name, files in sources().items():
        built = glob.glob(_path(name, ".*.so"))
        newest = max((os.path.getmtime(f) for f in files if os.path.exists(f)), default=0)
        if built and newest > max(os.path.getmtime(b) for b in built):
            out.append(name)
    return sorted(out)


def warn_if_stale():
    names = stale()
    if names:
        warnings.warn(f"ptengine: {', '.join(names)} changed after the last build and the "
                      f"compiled modules run the old code; rebuild with `pip install -e .`",
                      RuntimeWarning, stacklevel=3)
