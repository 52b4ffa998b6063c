"""Build batch_floor.pyx in place against the ptengine checkout two folders up (its .pxd
files: today's _core.pxd, vma.pxd, addrspace.pxd). Throwaway prototype of
notes/engine-shape.md section 5.2; run from this folder:
    python3 setup_proto.py && PYTHONPATH=../..:. python3 run_floor.py"""
import os
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))
sys.argv = [sys.argv[0], "build_ext", "--inplace", "-q"]
setup(ext_modules=cythonize([Extension("batch_floor", ["batch_floor.pyx"],
                                       extra_compile_args=["-O2"])],
                            include_path=[ROOT], quiet=True))
