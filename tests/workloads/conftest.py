"""Backends for the workload tests: the simulator, and the host kernel where it can serve.

Every model test takes `backend`: it runs once on the simulator and once on the live
kernel (marked `live`, skipped unless ptengine.live.available()).
"""
import pytest

import ptengine


def sim_available():
    return hasattr(ptengine, "System")


def live_available():
    try:
        from ptengine import live
    except ImportError:
        return False
    return live.available()


@pytest.fixture(params=["sim", pytest.param("live", marks=pytest.mark.live)])
def backend(request):
    if request.param == "sim" and not sim_available():
        pytest.skip("the simulator (ptengine.System) is not in this tree yet")
    if request.param == "live" and not live_available():
        pytest.skip("ptengine.live is not available (no MADV_GUARD_INSTALL on this host)")
    return request.param


@pytest.fixture
def sim():
    if not sim_available():
        pytest.skip("the simulator (ptengine.System) is not in this tree yet")
    return "sim"


@pytest.fixture
def live_only():
    if not live_available():
        pytest.skip("ptengine.live is not available (no MADV_GUARD_INSTALL on this host)")
    return "live"


@pytest.fixture(scope="session")
def availability():
    """Which backends serve here: .sim and .live booleans."""
    import types
    return types.SimpleNamespace(sim=sim_available(), live=live_available())
