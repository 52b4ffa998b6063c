"""Build the Cython extensions; all metadata lives in pyproject.toml.

Only the .pyx modules are compiled (the page-table core, the VMA layer, the fault handling
and the syscall classes): what a syscall runs is there. Everything else is plain Python,
which coverage, pdb and cProfile see. The .pyx modules get C semantics: bounds are checked
explicitly at their entry points, so the inner loops run without Cython's per-index checks
(the syscall modules ask for Python semantics in their own header). After editing a .pyx or
.pxd, rebuild (`python setup.py build_ext --inplace`), or ptengine warns at import that a
compiled module is older than its source (buildcheck.py).
"""
import glob
import os

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


def extension(path):
    return Extension(os.path.splitext(path)[0].replace(os.sep, "."), [path],
                     extra_compile_args=["-O2"])


# The page-table core (ptengine/core/), the mm (ptengine/mm/), one module per concern, and
# the workload recorder's rows (ptengine/workloads/rows.pyx).
pyx = [extension(p) for pattern in (os.path.join("core", "*.pyx"), os.path.join("mm", "*.pyx"),
                                    os.path.join("workloads", "*.pyx"))
       for p in sorted(glob.glob(os.path.join("ptengine", pattern)))]

# Both steps (Cython to C, C to objects) use every core: the build is most of CI's setup.
jobs = os.cpu_count() or 1
setup(ext_modules=cythonize(pyx, compiler_directives=C_DIRECTIVES, nthreads=jobs),
      options={"build_ext": {"parallel": jobs}})
