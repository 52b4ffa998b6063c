"""Suite-wide: the `host_profile` marker for expectations that hold only on some hosts.

`@pytest.mark.host_profile("anon_vma_name", profile="android")` says that the test's live
expectation holds where the host kernel has those fields of that profile (default: the
reference machine's; a HostProfile or a shipped profile's name). Its live half (a backend
parameter "kernel" or "live") is skipped elsewhere, with the difference named; the
simulator half runs on any host, under the profile the test itself sets up.
"""
import pytest

LIVE_BACKENDS = {"kernel", "live"}


def pytest_runtest_setup(item):
    marker = item.get_closest_marker("host_profile")
    params = getattr(getattr(item, "callspec", None), "params", {})
    if marker is None or not LIVE_BACKENDS & {v for v in params.values() if isinstance(v, str)}:
        return
    from ptengine import live, profile
    reasons = live.unchecked(profile.get(marker.kwargs.get("profile")), marker.args or None)
    if reasons:
        pytest.skip("; ".join(reasons))
