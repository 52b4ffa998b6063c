"""`ptengine whatif --all` on this host: the issue's target is under 1 s.

    pytest bench/test_bench_whatif.py --benchmark-enable

Two figures: the whole command as a user runs it (a new interpreter: imports, reading
every process's smaps and status, rebuilding and converting each in the simulator,
printing), with the 1 s target; and the same work in this process, against the time the
kernel takes to render those smaps and status files (the reference: reading them, which
is the floor of any tool that looks at every process).
"""
import contextlib
import io
import os
import subprocess
import sys
import time

from ptengine import cli


def _read_all():
    """Nanoseconds to read every /proc/PID/smaps and status (what the kernel renders)."""
    t0 = time.perf_counter_ns()
    for name in os.listdir("/proc"):
        if name.isdigit():
            for leaf in ("smaps", "status"):
                try:
                    with open(f"/proc/{name}/{leaf}", "rb") as f:
                        f.read()
                except OSError:
                    pass
    return time.perf_counter_ns() - t0


def _command():
    t0 = time.perf_counter_ns()
    subprocess.run([sys.executable, "-m", "ptengine.cli", "whatif", "--all"], check=True,
                   stdout=subprocess.DEVNULL,
                   env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    return time.perf_counter_ns() - t0


def test_whatif_all(bench, tmp_path):
    out = tmp_path / "all.json"

    def in_process():
        with contextlib.redirect_stdout(io.StringIO()):
            assert cli.main(["whatif", "--all", "--json", str(out)]) == 0

    work = bench.sim(in_process)
    read = bench.reference(_read_all)
    command = bench.reference(_command, rounds=bench.sizes["rounds"])
    bench.figure("whatif --all, whole command", command, unit="s", at_most=1.0,
                 goal="whatif --all on this host in under 1 s",
                 reference="a new interpreter, every process of the host")
    bench.ratio("in process vs reading smaps", work, read,
                ref_detail="(the kernel rendering every smaps and status)")
