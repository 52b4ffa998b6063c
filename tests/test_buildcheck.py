"""Every compiled module of the checkout is newer than its .pyx and .pxd, no build shadows
a plain .py, and a source edited after the last build is reported."""
import importlib
import os
import time

import pytest

from ptengine import buildcheck

SO = ".cpython-311-x86_64-linux-gnu.so"


def test_the_checkout_is_built_and_current():
    assert buildcheck.IN_CHECKOUT
    assert buildcheck.stale() == []


@pytest.mark.parametrize("name", ["system", "args", "errors", "proc.view", "proc.text", "fs.files",
                                  "workloads.runner"])
def test_plain_modules_run_from_their_source(name):
    assert importlib.import_module(f"ptengine.{name}").__file__.endswith(".py")


def _tree(tmp_path, files):
    """Files created in order, each one second newer than the one before."""
    now = time.time()
    for i, rel in enumerate(files):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
        os.utime(path, (now + i, now + i))


@pytest.mark.parametrize("files, expected", [
    (["vma.pyx", "vma.pxd", "vma" + SO], []),
    (["vma.pxd", "vma" + SO, "vma.pyx"], ["vma"]),          # .pyx edited after the build
    (["vma.pyx", "vma" + SO, "vma.pxd"], ["vma"]),          # .pxd edited after the build
    (["mm.py", "mm" + SO], ["mm"]),                         # a build shadowing a .py
    (["mm" + SO, "mm.py"], ["mm"]),
    (["sub/fault.pyx", "sub/fault" + SO, "other" + SO], []),    # nothing to compare with
    (["sub/fault" + SO, "sub/fault.pyx"], ["sub.fault"]),
])
def test_stale_builds_are_named(tmp_path, files, expected):
    _tree(tmp_path, files)
    assert buildcheck.stale(str(tmp_path), in_checkout=True) == expected


def test_an_installed_package_is_not_checked(tmp_path):
    """Unpacking a wheel gives its files the times of the unpacking, in any order."""
    _tree(tmp_path, ["vma" + SO, "vma.pyx"])
    assert buildcheck.stale(str(tmp_path), in_checkout=False) == []
