"""Build the Cython extensions; all metadata lives in pyproject.toml."""
import glob
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

# One set of compiler directives for every module: bounds are checked explicitly at the
# core's entry points, so the inner loops run without Cython's per-index checks.
DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": False,
    "embedsignature": True,
}

extensions = [
    Extension(
        os.path.splitext(path)[0].replace(os.sep, "."),
        [path],
        extra_compile_args=["-O2"],
    )
    for path in sorted(glob.glob(os.path.join("ptengine", "*.pyx")))
]

setup(ext_modules=cythonize(extensions, compiler_directives=DIRECTIVES))
