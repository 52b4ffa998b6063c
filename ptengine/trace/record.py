"""`ptengine record`: run a program under strace with ASLR off, logging what replay needs
(mirrors no kernel file).

The log is `strace -f` with descriptors decoded to paths (and pidfds to pids), strings
and arrays printed whole (`-s`: a shorter limit prints a process_madvise iovec array as
`[...]`, which cannot be replayed), and every call that changes or reads the address
space: strace's %memory class, the calls it leaves out (process_madvise; mseal and
map_shadow_stack where this strace knows them), process creation and exit (clone, clone3,
fork, vfork, execve, execveat, exit, exit_group: they say which threads share an mm),
prctl (PR_SET_VMA_ANON_NAME), shmat/shmdt and io_setup (mappings strace shows no mmap
for), openat/open/memfd_create/read/pread64/lseek (how a mapped file was opened, and
the /proc/PID/maps text the program read), unlink/unlinkat (a mapped file's name going
makes maps say "(deleted)"), and prlimit64/getrlimit (the stack limit,
which places mmap_base). execve is printed with its environment (`abbrev=!execve`):
with argv it sizes the initial stack. The log therefore holds the program's environment;
remove secrets before sharing one. ASLR is switched off with
personality(ADDR_NO_RANDOMIZE) in strace's own process, which the program inherits, so
the log begins at the program's execve and addresses are those of the exec layout.

Maps just before exit (`maps_at_exit`): strace holds the first exit_group of each
process at its entry for 0.1 s (its `inject=...:delay_enter`). Record watches the
program's threads (/proc/PID/task/*/syscall); when one sits at exit_group's entry, it
stops the program with SIGSTOP (its parent is strace: nobody else is told), saves
/proc/PID/maps and smaps, and sends SIGCONT; strace then lets the exit_group run. (Failing
the call with ERESTARTNOINTR and a SIGSTOP does not work: strace skips an injected call
by setting its number to -1, so the kernel does not restart it and glibc's _exit() falls
through to exit(), which ends only the calling thread.) A program that ends without
exit_group (killed by a signal, or its last thread calling exit) gets no dump; each
forked child's exit is 0.1 s later than it would be.
"""
import ctypes
import dataclasses
import glob
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
            "pread64", "lseek", "prlimit64", "getrlimit", "unlink", "unlinkat")
# strace holds each process's first exit_group at its entry this long (microseconds).
STOP_AT_EXIT = "exit_group:delay_enter=100000:when=1"
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
           "-e", "abbrev=!execve", "-e", "trace=" + ",".join(names)]
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
    # The program by its absolute path: replay opens the file the execve names.
    path = shutil.which(argv[0])
    if path is None:
        raise FileNotFoundError(f"{argv[0]}: no such program")
    argv = [os.path.abspath(path)] + list(argv[1:])
    names, missing = traceable(strace)
    for stale in (log, maps_at_exit, maps_at_exit and maps_at_exit + ".smaps"):
        if stale and os.path.exists(stale):
            os.unlink(stale)
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
    """Watch the traced program's threads; when one is held at the entry of exit_group,
    stop the whole program (SIGSTOP: its parent is strace, so no one else notices), save
    its maps and smaps, and let it go on (SIGCONT); strace then lets the exit_group run."""
    root = _program_pid(proc, log, deadline)
    saved = None
    while proc.poll() is None:
        if deadline is not None and time.monotonic() > deadline:
            raise subprocess.TimeoutExpired(proc.args, 0)
        tid = _in_exit_group(root) if root is not None and saved is None else None
        if tid is not None:
            try:
                os.kill(root, signal.SIGSTOP)
                # Through the exiting thread: the leader may be gone already (a program
                # whose main thread ended with pthread_exit has no mm in /proc/PID).
                saved = _dump(f"/proc/{root}/task/{tid}", maps_path)
            finally:
                _kill_quietly(root, signal.SIGCONT)
        time.sleep(0.002)
    return saved


def _program_pid(proc, log, deadline):
    """The traced program's pid: the first in the log (its execve). Not strace's first
    child: strace forks short-lived children of its own at start to probe ptrace."""
    while proc.poll() is None:
        try:
            with open(log) as f:
                first = f.readline()
        except FileNotFoundError:
            first = ""
        if first.endswith("\n") and first.split(" ", 1)[0].isdigit():
            return int(first.split(" ", 1)[0])
        if deadline is not None and time.monotonic() > deadline:
            raise subprocess.TimeoutExpired(proc.args, 0)
        time.sleep(0.001)
    return None


def _in_exit_group(pid):
    """The thread of process `pid` that sits at the entry of exit_group (x86-64: 231),
    or None."""
    for task in glob.glob(f"/proc/{pid}/task/*/syscall"):
        try:
            with open(task) as f:
                if f.read().split(" ", 1)[0] == "231":
                    return int(task.split("/")[4])
        except OSError:
            continue
    return None


def _kill_quietly(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _dump(proc_dir, path):
    """Save proc_dir's maps to `path` and its smaps to PATH.smaps; the path, or None."""
    try:
        with open(f"{proc_dir}/maps") as f:
            text = f.read()
        with open(f"{proc_dir}/smaps") as f:
            smaps = f.read()
    except OSError:
        return None
    with open(path, "w") as f:
        f.write(text)
    with open(path + ".smaps", "w") as f:
        f.write(smaps)
    return path
