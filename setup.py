"""Build the Cython extensions; all metadata lives in pyproject.toml.

Two kinds of module are compiled:
- the .pyx modules (the page-table core, the VMA layer, the address-space plumbing), with
  C semantics: bounds are checked explicitly at their entry points, so the inner loops
  run without Cython's per-index checks;
- the syscall modules, which stay plain, readable Python (.py) and are compiled as they
  are, with Python semantics, because every simulated syscall runs through them. The
  .py file is the source; after editing one, rebuild (`pip install -e .`), or ptengine
  warns at import that the compiled module is older than its source (compiled.py).
"""
import glob
import os
import runpy

from Cython.Build import cythonize
from setuptools import Extension, setup

C_DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": False,
    "embedsignature": True,
}
# No embedsignature: a compiled function's docstring stays the one written (the workload
# registry reads its first line), and binding keeps its signature introspectable.
PYTHON_DIRECTIVES = {"language_level": 3, "binding": True}

# The modules a syscall passes through, listed in ptengine/compiled.py (which also checks
# that their builds are current).
COMPILED_PY = runpy.run_path(os.path.join("ptengine", "compiled.py"))["COMPILED_PY"]


def extension(path):
    return Extension(os.path.splitext(path)[0].replace(os.sep, "."), [path],
                     extra_compile_args=["-O2"])


pyx = [extension(p) for p in sorted(glob.glob(os.path.join("ptengine", "*.pyx")))]
py = [extension(os.path.join("ptengine", *name.split(".")) + ".py") for name in COMPILED_PY]

# Both steps (Cython to C, C to objects) use every core: the build is most of CI's setup.
jobs = os.cpu_count() or 1
setup(ext_modules=cythonize(pyx, compiler_directives=C_DIRECTIVES, nthreads=jobs)
      + cythonize(py, compiler_directives=PYTHON_DIRECTIVES, nthreads=jobs),
      options={"build_ext": {"parallel": jobs}})
