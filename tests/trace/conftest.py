"""Fixtures of the trace tests."""
import pytest


@pytest.fixture
def live():
    """A process on the host kernel (ptengine.live), closed after the test."""
    from ptengine import live
    if not live.available():
        pytest.skip("host kernel without guard regions (ptengine.live unavailable)")
    mm = live.LiveMM()
    yield mm
    mm.close()
