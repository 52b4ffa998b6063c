"""Fixtures for the live backend's own tests: a LiveSystem and one process in it."""
import pytest

from ptengine import live


@pytest.fixture
def system():
    if not live.available():
        live.server_binary()          # a build failure is an error, not a skip
        pytest.skip("the host kernel has no guard regions (MADV_GUARD_INSTALL)")
    with live.LiveSystem() as s:
        yield s


@pytest.fixture
def mm(system):
    return system.spawn()
