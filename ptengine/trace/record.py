"""`ptengine record`: run a program under strace with ASLR off, logging what replay needs.

The log is `strace -f` with descriptors decoded to paths (and pidfds to pids), strings
and arrays printed whole (`-s`: a shorter limit prints a process_madvise iovec array as
`[...]`, which cannot be replayed), and every call that changes or reads the address
space: strace's %memory class, the calls it leaves out (process_madvise; mseal and
map_shadow_stack where this strace knows them), process creation and exit (clone, clone3,
fork, vfork, execve, execveat, exit, exit_group: they say which threads share an mm),
prctl (PR_SET_VMA_ANON_NAME), shmat/shmdt and io_setup (mappings strace shows no mmap
for), and openat/open/memfd_create/read/pread64 (how a mapped file was opened, and the
/proc/PID/maps text the program read). ASLR is switched off with
personality(ADDR_NO_RANDOMIZE) in strace's own process, which the program inherits, so
the log begins at the program's execve and addresses are those of the exec layout.

Maps just before exit (`maps_at_exit`): strace fails the first exit_group of each
process with ERESTARTNOINTR and delivers it a SIGSTOP (its syscall-tampering `inject`).
The process stops before returning to user space; record sees strace's "stopped by
SIGSTOP" line, saves /proc/PID/maps and smaps if the process is the traced program, and
sends SIGCONT: the kernel restarts the exit_group, which strace now lets through. The
injected line is marked (INJECTED) in the log and replay skips it. A program that ends
without exit_group (killed by a signal, or its last thread calling exit) gets no dump.
"""
import ctypes
import dataclasses
import os
import re
import shutil
import signal
import subprocess
import time

ADDR_NO_RANDOMIZE = 0x0040000
STRING_LIMIT = 65536          # >= IOV_MAX (1024) iovecs, and the maps text of one read()
SYSCALLS = ("%memory", "process_madvise", "mseal", "map_shadow_stack", "clone", "clone3",
            "fork", "vfork", "execve", "execveat", "exit", "exit_group", "prctl", "shmat",
            "shmdt", "io_setup", "io_destroy", "openat", "open", "memfd_create", "read",
            "pread64")
STOP_AT_EXIT = "exit_group:error=ERESTARTNOINTR:signal=SIGSTOP:when=1"
_INVALID = re.compile(r"invalid system call '([^']+)'")


@dataclasses.dataclass
class Recording:
    returncode: int             # the program's exit status (as strace passes it on)
    log: str
    maps: object                # the maps file written, or None
    untraced: tuple             # system calls this strace does not know (not recorded)


def traceable(strace="strace", names=SYSCALLS):
    """(names this strace can trace, names it does not know), asking strace itself."""
    names = list(names)
    missing = []
    while True:
        r = subprocess.run([strace, "-o", os.devnull, "-e", "trace=" + ",".join(names),
                            "true"], capture_output=True, text=True)
        bad = _INVALID.search(r.stderr)
        if r.returncode == 0 or not bad:
            return names, tuple(missing)
        names.remove(bad.group(1))
        missing.append(bad.group(1))


def command(log, argv, names, maps_at_exit=False, strace="strace"):
    """The strace command line that records `argv` into `log`."""
    cmd = [strace, "-f", "--decode-fds=path,pidfd", "-s", str(STRING_LIMIT), "-o", log,
           "-e", "trace=" + ",".join(names)]
    if maps_at_exit:
        cmd += ["-e", "inject=" + STOP_AT_EXIT]
    return cmd + ["--"] + list(argv)


def _no_aslr():
    """In the child before exec: personality(current | ADDR_NO_RANDOMIZE), as setarch -R."""
    libc = ctypes.CDLL(None, use_errno=True)
    persona = libc.personality(0xFFFFFFFF)
    libc.personality(persona | ADDR_NO_RANDOMIZE)


def record(argv, log, maps_at_exit=None, *, strace="strace", timeout=None):
    """Run `argv` under strace into `log`; with `maps_at_exit` (a path), save the program's
    /proc/PID/maps there (and its smaps beside it, PATH.smaps) just before it exits."""
    if not shutil.which(strace):
        raise FileNotFoundError(f"{strace} is not installed (Debian package: strace)")
    if not argv:
        raise ValueError("no program to record")
    names, missing = traceable(strace)
    if os.path.exists(log):
        os.unlink(log)
    proc = subprocess.Popen(command(log, argv, names, bool(maps_at_exit), strace),
                            preexec_fn=_no_aslr)
    saved = None
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        if maps_at_exit:
            saved = _serve_exit_stops(proc, log, maps_at_exit, deadline)
        proc.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return Recording(proc.returncode, log, saved, missing)


def _serve_exit_stops(proc, log, maps_path, deadline):
    """Follow the log as strace writes it (a line at a time); at each exit stop, dump the
    traced program's maps if the stopped thread is one of it, then let it go on."""
    root = None
    saved = None
    buf = ""
    with _open_when_created(log, proc) as f:
        while True:
            chunk = f.read() if f else ""
            if not chunk:
                if proc.poll() is not None:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise subprocess.TimeoutExpired(proc.args, 0)
                time.sleep(0.002)
                continue
            buf += chunk
            lines = buf.split("\n")
            buf = lines.pop()
            for line in lines:
                fields = line.split(None, 1)
                if not fields or not fields[0].isdigit():
                    continue
                pid = int(fields[0])
                if root is None:
                    root = pid
                if line.endswith("--- stopped by SIGSTOP ---"):
                    tgid = _tgid(pid)
                    if tgid == root:
                        saved = _dump(pid, maps_path) or saved
                    os.kill(pid if tgid is None else tgid, signal.SIGCONT)
    return saved


class _open_when_created:
    """The log, opened once strace has created it (None if strace ended first)."""

    def __init__(self, path, proc):
        self.path, self.proc, self.f = path, proc, None

    def __enter__(self):
        while self.f is None:
            try:
                self.f = open(self.path, encoding="utf-8", errors="surrogateescape")
            except FileNotFoundError:
                if self.proc.poll() is not None:
                    return None
                time.sleep(0.002)
        return self.f

    def __exit__(self, *exc):
        if self.f:
            self.f.close()


def _tgid(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Tgid:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _dump(pid, path):
    try:
        with open(f"/proc/{pid}/maps") as f:
            text = f.read()
        with open(f"/proc/{pid}/smaps") as f:
            smaps = f.read()
    except OSError:
        return None
    with open(path, "w") as f:
        f.write(text)
    with open(path + ".smaps", "w") as f:
        f.write(smaps)
    return path
