"""A real Dask cluster on 127.0.0.1 for the distributed sweep tests: `dask scheduler` and
two `dask worker` processes, started as subprocesses with this tree on their PYTHONPATH
(so they import the ptengine under test, as an editable install would), bounded in time
and killed at teardown."""
import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys

import pytest

import ptengine

REPO = os.path.dirname(os.path.dirname(os.path.abspath(ptengine.__file__)))
START_TIMEOUT_S = 90


def free_port():
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclasses.dataclass
class Cluster:
    address: str
    scheduler: subprocess.Popen
    workers: list

    def address_of(self, client, i):
        """The address worker i (named w{i}) serves on."""
        return next(addr for addr, w in client.scheduler_info()["workers"].items()
                    if str(w["name"]).startswith(f"w{i}"))

    def kill_worker(self, i):
        """SIGKILL worker i with its nanny (its own session): the worker is gone for good."""
        os.killpg(self.workers[i].pid, signal.SIGKILL)
        self.workers[i].wait(timeout=30)


def _start(args, log):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [REPO] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    return subprocess.Popen([sys.executable, "-m", "dask", *args], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


@pytest.fixture
def dask_cluster(tmp_path):
    from distributed import Client
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    log = open(tmp_path / "dask.log", "w")
    procs = [_start(["scheduler", "--host", "127.0.0.1", "--port", str(port),
                     "--no-dashboard"], log)]
    try:
        for i in range(2):
            procs.append(_start(["worker", address, "--nworkers", "1", "--nthreads", "1",
                                 "--no-dashboard", "--host", "127.0.0.1", "--name", f"w{i}"],
                                log))
        with Client(address, timeout=f"{START_TIMEOUT_S}s") as client:
            client.wait_for_workers(2, timeout=START_TIMEOUT_S)
        yield Cluster(address, procs[0], procs[1:])
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=30)
        log.close()
