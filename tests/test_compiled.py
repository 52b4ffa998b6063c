"""Every module that should run compiled does, and an edit after the last build is
reported."""
import importlib
import os
import time
import warnings

import pytest

from ptengine import compiled


@pytest.mark.parametrize("name", sorted(compiled.sources()))
def test_module_runs_compiled(name):
    module = importlib.import_module(f"ptengine.{name}")
    assert module.__file__.endswith(".so"), f"{name} imported from {module.__file__}"


@pytest.mark.parametrize("name, source", [("mm", "mm.py"), ("vma", "vma.pyx"),
                                          ("addrspace", "addrspace.pxd")])
def test_a_source_newer_than_its_build_is_reported(name, source):
    assert compiled.stale() == []
    path = os.path.join(compiled.HERE, source)
    st = os.stat(path)
    try:
        later = time.time_ns() + 86400 * 10**9          # edited "tomorrow"
        os.utime(path, ns=(st.st_atime_ns, later))
        assert compiled.stale() == [name]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            compiled.warn_if_stale()
        assert any(name in str(w.message) and "pip install -e" in str(w.message)
                   for w in caught)
    finally:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert compiled.stale() == []


def test_an_installed_package_is_not_checked(monkeypatch):
    """Unpacking a wheel gives its files the times of the unpacking, in any order."""
    source = os.path.join(compiled.HERE, "mm.py")
    st = os.stat(source)
    try:
        os.utime(source, ns=(st.st_atime_ns, time.time_ns() + 86400 * 10**9))
        assert compiled.stale() == ["mm"]
        monkeypatch.setattr(compiled, "IN_CHECKOUT", False)
        assert compiled.stale() == []
    finally:
        os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns))
