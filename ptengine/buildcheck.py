"""Is every compiled module of this checkout newer than its Cython sources? (mirrors no kernel file)

The hot code is Cython (.pyx, with its .pxd); Python imports the extension built from it,
so a .pyx or .pxd edited after the last build would silently not run, and an extension left
over from a module that is plain Python now (a .py beside it, no .pyx) would shadow that
.py. `stale()` names such modules and importing ptengine warns about them. Only a source
checkout (setup.py beside the package) is checked: an installed wheel's files carry the
times they were unpacked at.
"""
import glob
import os

HERE = os.path.dirname(os.path.abspath(__file__))
IN_CHECKOUT = os.path.exists(os.path.join(HERE, os.pardir, "setup.py"))


def stale(root=HERE, in_checkout=IN_CHECKOUT):
    """Dotted names (below `root`) of the modules whose extension is older than their .pyx
    or .pxd, or shadows a plain .py; sorted, none outside a source checkout."""
    if not in_checkout:
        return []
    out = set()
    for built in glob.glob(os.path.join(root, "**", "*.so"), recursive=True):
        folder, filename = os.path.split(built)
        base = os.path.join(folder, filename.split(".")[0])
        name = os.path.relpath(base, root).replace(os.sep, ".")
        sources = [base + suffix for suffix in (".pyx", ".pxd") if os.path.exists(base + suffix)]
        if not os.path.exists(base + ".pyx"):
            if os.path.exists(base + ".py"):
                out.add(name)
            continue
        if max(os.path.getmtime(s) for s in sources) > os.path.getmtime(built):
            out.add(name)
    return sorted(out)
