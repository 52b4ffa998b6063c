"""Real programs recorded on this host at test time, then replayed: every call's result
must equal the log's, and the simulated maps must equal the program's own dump (taken
by `record --maps-at-exit` just before it exited) line for line.

Where the answer depends on something strace cannot show, the test names the lines:
  * java: the hsperfdata file the JVM maps, then unlinks before it exits. Its inode
    number is in the dump, but not in the log (strace prints paths, never inode numbers)
    and the file is gone when replay runs, so that one line differs in its inode column.
  * (not used here) a MAP_SHARED|MAP_ANONYMOUS mapping shows "/dev/zero (deleted)" with
    the inode number of the shmem file the kernel made for it, which no log shows; the
    simulator numbers its own. Python's mmap.mmap(-1, n) makes one, hence MAP_PRIVATE.
"""
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from ptengine.trace import maps, record, report, strace
from ptengine.trace.replay import replay

pytestmark = pytest.mark.skipif(not shutil.which("strace"),
                                reason="strace is not installed (.ci/run installs it)")
HERE = os.path.dirname(os.path.abspath(__file__))
TIMEOUT = 180


def record_and_replay(tmp_path, argv, start_maps=None):
    log, dump = tmp_path / "run.strace", tmp_path / "exit.maps"
    rec = record.record(argv, str(log), str(dump), timeout=TIMEOUT)
    assert rec.returncode == 0, f"{argv[0]} failed under strace"
    assert rec.maps == str(dump), "no maps dump at exit"
    with open(log, encoding="utf-8", errors="surrogateescape") as f:
        calls, _ = strace.parse(f)
    result = replay(calls, start_maps=start_maps)
    return result, report.check_maps(result, dump.read_text())


def assert_exact(result, check, unseen=lambda line: False):
    """No mismatching call, nothing unreplayed, and the maps equal but for the lines
    `unseen` picks (what strace cannot show; each test says why)."""
    assert [m.describe() for m in result.mismatches] == []
    assert dict(result.not_replayed) == {}
    lines, _, diffs = check
    assert lines > 10
    assert [d for d in diffs if not unseen(d[1] or "")] == []


def test_python_with_threads(tmp_path):
    data = tmp_path / "data.bin"
    data.write_bytes(b"\0" * (1 << 16))
    program = textwrap.dedent(f"""
        import mmap, threading
        def work(n):
            blocks = [bytearray(300_000) for _ in range(3)]   # malloc's mmap threshold
            return sum(len(b) for b in blocks) + n
        threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
        for t in threads: t.start()
        for t in threads: t.join()
        with open({str(data)!r}, "r+b") as f:
            shared = mmap.mmap(f.fileno(), 0)
            shared[0:5] = b"hello"
        # Read our own maps a little at a time, mapping memory between two reads.
        with open("/proc/self/maps", "rb", buffering=0) as f:
            first = f.read(500)
            anon = mmap.mmap(-1, 1 << 20, flags=mmap.MAP_PRIVATE)
            rest = f.read()
        print(len(first) + len(rest))
        """)
    result, check = record_and_replay(tmp_path, [os.path.realpath(sys.executable), "-c",
                                                 program])
    assert result.replayed > 100 and result.maps_reads >= 2
    assert result.counter.by_name["mprotect"] >= 6            # a guard per thread stack
    assert_exact(result, check)


def test_c_program_that_forks_and_execs(tmp_path):
    if not shutil.which("cc"):
        pytest.skip("no C compiler")
    exe = tmp_path / "forkexec"
    subprocess.run(["cc", "-O1", "-pthread", "-o", str(exe),
                    os.path.join(HERE, "programs", "forkexec.c")], check=True)
    result, check = record_and_replay(tmp_path, [str(exe)])
    # The forked child and the posix_spawn child after its exec have their own mms.
    assert result.other_processes > 0
    assert len(result.images) == 1
    # It read its maps 300 bytes at a time with an mmap between two reads.
    assert result.maps_reads > 5
    assert_exact(result, check)


@pytest.mark.skipif(not (shutil.which("gdb") and shutil.which("cc")),
                    reason="needs gdb and a C compiler")
def test_c_program_from_a_gdb_listing_at_its_first_instruction(tmp_path):
    """--start-maps: the state after exec from gdb's `info proc mappings` at `starti`
    (ASLR off, as gdb runs programs) instead of the simulated exec layout."""
    exe = tmp_path / "forkexec"
    subprocess.run(["cc", "-O1", "-pthread", "-o", str(exe),
                    os.path.join(HERE, "programs", "forkexec.c")], check=True)
    listing = subprocess.run(["gdb", "-nx", "-batch", "-ex", "starti", "-ex",
                              "info proc mappings", str(exe)], capture_output=True,
                             text=True, timeout=TIMEOUT).stdout
    start = maps.parse(listing)
    result, check = record_and_replay(tmp_path, [str(exe)], start_maps=start)
    assert result.images == [(1, str(exe))]
    assert_exact(result, check)


@pytest.mark.skipif(not shutil.which("node"), reason="node is not installed")
def test_node_with_a_worker_thread(tmp_path):
    script = ("const {Worker} = require('worker_threads');"
              "const w = new Worker('let a = new Array(1e5).fill(1); a.length', {eval: true});"
              "w.on('exit', () => console.log('done'));")
    result, check = record_and_replay(tmp_path, [shutil.which("node"), "-e", script])
    assert result.replayed > 200
    assert_exact(result, check)


@pytest.mark.skipif(not shutil.which("java"), reason="java is not installed")
def test_java_with_a_thread(tmp_path):
    source = tmp_path / "Hello.java"
    source.write_text("public class Hello { public static void main(String[] a) throws "
                      "Exception { Thread t = new Thread(() -> System.out.println(\"hi\"));"
                      " t.start(); t.join(); } }\n")
    result, check = record_and_replay(tmp_path, [shutil.which("java"), "-Xshare:auto",
                                                 str(source)])
    assert result.replayed > 500
    # The one line strace cannot give: see the module docstring.
    assert_exact(result, check, unseen=lambda line: "/hsperfdata_" in line)


def test_command_line_record_then_replay(tmp_path, capsys):
    from ptengine import cli
    log, dump, out = tmp_path / "true.strace", tmp_path / "true.maps", tmp_path / "r.json"
    assert cli.main(["record", "-o", str(log), "--maps-at-exit", str(dump), "--",
                     "/bin/true", "ignored"]) == 0
    assert cli.main(["replay", str(log), "--check-maps", str(dump), "--json", str(out)]) == 0
    import json
    doc = json.loads(out.read_text())
    assert doc["mismatches"] == [] and doc["maps_lines_differing"] == 0
    assert doc["calls"] == doc["replayed"] > 5 and doc["maps_lines"] > 5


def test_a_script_that_execs_a_program(tmp_path):
    """A "#!" script is run by its interpreter (binfmt_script); each exec of the program
    starts a new image, and all of them replay."""
    script = tmp_path / "run.sh"
    script.write_text(f"#!/bin/sh -e\nexec {shutil.which('true')} done\n")
    script.chmod(0o755)
    result, check = record_and_replay(tmp_path, [str(script)])
    assert [os.path.realpath(p) for _, p in result.images] == \
        [os.path.realpath("/bin/sh"), os.path.realpath(shutil.which("true"))]
    assert_exact(result, check)
