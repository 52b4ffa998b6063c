"""The syscall modules run compiled, and an edit after the last build is reported."""
import importlib
import os
import warnings

import pytest

from ptengine import compiled


@pytest.mark.parametrize("name", compiled.COMPILED_PY)
def test_syscall_module_runs_compiled(name):
    module = importlib.import_module(f"ptengine.{name}")
    assert module.__file__.endswith(".so"), f"{name} imported from {module.__file__}"


def test_a_source_newer_than_its_build_is_reported():
    assert compiled.stale() == []
    source = os.path.join(compiled.HERE, "mapping.py")
    st = os.stat(source)
    try:
        os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns + 10**12))
        assert compiled.stale() == ["mapping"]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            compiled.warn_if_stale()
        assert any("mapping" in str(w.message) and "pip install -e" in str(w.message)
                   for w in caught)
    finally:
        os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert compiled.stale() == []
