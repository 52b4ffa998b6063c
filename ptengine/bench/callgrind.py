"""Instruction counts of the compiled walkers under callgrind (mirrors no kernel file).

The walkers counted mirror mm/pagewalk.c and its users.

A small driver calls each walker once on a fixed range; the count is deterministic for a
given source and toolchain, so it is the regression figure where timings are noise.
"""
import collections
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

try:
    import Cython
except ImportError:             # an installed wheel runs without it; the toolchain says so
    Cython = None

from . import Unavailable

MiB = 1 << 20
# The folder the driver imports the compiled core from: this installed or in-place-built
# package, wherever it lives.
PACKAGE = Path(__file__).resolve().parent.parent

WALK_BYTES = 64 * MiB
# The driver calls each walker once, on a fixed range, through PageTables' Python methods;
# callgrind collects only inside those methods (--toggle-collect), and each one's inclusive
# count is its figure.
# The driver loads the compiled core without the package's Python modules (only errors and
# constants, which the core imports), so that changes to those leave the allocator's state,
# and with it the counts, as they were.
DRIVER = f"""
import sys, types
import numpy as np
package = types.ModuleType("ptengine")
package.__path__ = ["r/ptengine"]
sys.modules["ptengine"] = package
from ptengine import core as _core
A, S = 0x7f0000000000, {WALK_BYTES}
frames = _core.Frames()
pt = _core.PageTables(frames)
child = _core.PageTables(frames)
pt.install_guards(A, A + S)                           # fresh range: tables allocated
pt.remove_guards(A, A + S)
pt.fault_anon(A, A + S, True, 0x8000000000000067)     # first-touch write faults
pt.change_prot(A, A + S, 0, 0x2)                      # write-protect every PTE
pt.copy_range(child, A, A + S, 1)                     # fork: COW copy
pt.pagemap(A, A + S, np.zeros(S // 4096, dtype=np.uint64))
pt.zap(A, A + S, 0)                                   # populated zap
"""
WALKERS = ("install_guards", "remove_guards", "fault_anon", "change_prot", "copy_range",
           "pagemap", "zap")
_WRAPPER = "__pyx_pw_8ptengine_4core_10pagetables_10PageTables_"
_LINE = re.compile(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?\S*?:" + re.escape(_WRAPPER)
                   + r"\d+([A-Za-z_]\w*?)(?:'\d+)?(?:\s|$)")


def toolchain():
    """What instruction counts depend on besides the source."""
    return {"python": platform.python_version(), "machine": platform.machine(),
            "cython": Cython and Cython.__version__, "cc": _first_line([_cc(), "--version"]),
            "valgrind": _first_line(["valgrind", "--version"])}


def _cc():
    return (sysconfig.get_config_var("CC") or "cc").split()[0]


def _first_line(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.splitlines()[0].strip() if out.strip() else None


def parse_callgrind_annotate(text):
    """{walker: instructions} from `callgrind_annotate --inclusive=yes` output: the
    inclusive count of each PageTables method wrapper, fragments (inlined header code
    reported under another file) summed."""
    counts = collections.Counter()
    for line in text.splitlines():
        m = _LINE.match(line)
        if m:
            counts[m.group(2)] += int(m.group(1).replace(",", ""))
    return dict(counts)


def instruction_counts():
    valgrind, annotate = shutil.which("valgrind"), shutil.which("callgrind_annotate")
    if not valgrind or not annotate:
        raise Unavailable("valgrind (with callgrind_annotate) is not installed: instruction "
                          "counts not computed")
    with tempfile.TemporaryDirectory(prefix="ptengine-callgrind-") as tmp:
        driver, out = Path(tmp, "driver.py"), Path(tmp, "callgrind.out")
        driver.write_text(DRIVER)
        # A fixed environment: what the interpreter allocates at start-up (os.environ,
        # sys.path) shifts the allocator's state, and with it the walkers' counts. So the
        # package is reached through a link of fixed name, whatever folder it lives in.
        Path(tmp, "r").mkdir()
        Path(tmp, "r", "ptengine").symlink_to(PACKAGE, target_is_directory=True)
        # Bytecode caches go to a fresh folder too: a cache written under another path
        # holds that path's file names, which the import machinery then fixes up.
        env = {"PYTHONHASHSEED": "0", "PYTHONPATH": "r", "PATH": os.defpath,
               "LC_ALL": "C", "PYTHONPYCACHEPREFIX": "pyc"}
        # Once without valgrind first, so that the bytecode caches are written and the
        # counted run never compiles (compiling would also shift the allocator's state).
        subprocess.run([sys.executable, str(driver)], env=env, cwd=tmp, capture_output=True)
        cmd = [valgrind, "--tool=callgrind", f"--callgrind-out-file={out}",
               "--collect-atstart=no", f"--toggle-collect={_WRAPPER}*",
               sys.executable, str(driver)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp)
        if proc.returncode != 0:
            raise RuntimeError(f"callgrind driver failed ({proc.returncode}):\n"
                               f"{proc.stderr[-3000:]}")
        text = subprocess.run([annotate, "--inclusive=yes", "--auto=no", "--threshold=100",
                               str(out)], capture_output=True, text=True, check=True).stdout
    counts = parse_callgrind_annotate(text)
    missing = [w for w in WALKERS if w not in counts]
    if missing:
        raise RuntimeError(f"callgrind reported no count for {missing}")
    return {"toolchain": toolchain(), "bytes_walked": WALK_BYTES,
            "counts": {w: counts[w] for w in WALKERS}}
