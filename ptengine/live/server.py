"""Build, start and talk to the live server (`live/server.c`; mirrors no kernel file).

The server is compiled on first use with the system C compiler into a per-user cache,
keyed by a hash of its source and the compile command, so an edited source rebuilds and an
unchanged one is never rebuilt. `PTENGINE_LIVE_SERVER` names a prebuilt binary instead;
PTENGINE_LIVE=0 turns the backend off (enabled()).

The wire format (little-endian, fixed size; see server.c):
  request  = op u32, payload length u32, six u64 arguments, then the payload
  response = result i64, errno i32, fault signal i32, fault si_code i32, payload length u32,
             fault address u64, then the payload
A descriptor travels as SCM_RIGHTS with a request (to the server) or a response (from it).
"""
import enum
import errno
import functools
import hashlib
import os
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from ..calls import CallOp

SOURCE = Path(__file__).resolve().parent / "server.c"
CFLAGS = ("-O2", "-std=gnu11", "-Wall")
DEFAULT_TIMEOUT = 30.0

REQUEST = struct.Struct("<II6Q")
RESPONSE = struct.Struct("<qiiiIQ")
U64 = (1 << 64) - 1


def enabled():
    """False where no host kernel may be used: not Linux, or PTENGINE_LIVE=0."""
    return sys.platform.startswith("linux") and os.environ.get("PTENGINE_LIVE", "1") != "0"


# Request codes; the values are server.c's `enum op`. The calls a batch row can be are
# calls.py's CallOp (one numbering for both backends); the server's other requests follow.
Op = enum.IntEnum("Op", [("HELLO", 0)]
                  + [(op.name, op.value) for op in CallOp if op is not CallOp.IOVEC]
                  + [("POISON", 14), ("UFFD_REGISTER", 15), ("UFFD_UNREGISTER", 16),
                     ("READ", 20), ("WRITE", 21), ("ACCESS", 22), ("FORK", 30), ("EXIT", 31),
                     ("RECV_FD", 32), ("BATCH", 40)], module=__name__)


class Access(enum.IntEnum):
    """server.c's `enum access_kind`."""
    READ = 0
    WRITE = 1
    RMW = 2      # a write access that leaves the byte unchanged
    EXEC = 3


class LiveServerError(RuntimeError):
    """The live server could not be built or started, or stopped answering."""


class ServerDied(LiveServerError):
    """The live server process went away in the middle of a request."""


class Reply(NamedTuple):
    ret: int
    err: int
    sig: int
    code: int
    addr: int
    payload: bytes
    fds: tuple


# --- building ------------------------------------------------------------------------------

def _compiler():
    argv = shlex.split(sysconfig.get_config_var("CC") or "cc")
    return argv if argv and shutil.which(argv[0]) else ["cc"]


def cache_dir():
    """Where built servers are kept: $XDG_CACHE_HOME/ptengine, else ~/.cache/ptengine."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    for d in (Path(base) / "ptengine", Path(tempfile.gettempdir()) / f"ptengine-{os.getuid()}"):
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(d, os.W_OK | os.X_OK):
            return d
    raise LiveServerError("no writable cache directory for the live server")


@functools.lru_cache(maxsize=None)
def server_binary():
    """Path of the server executable, compiling it if this source was never built."""
    override = os.environ.get("PTENGINE_LIVE_SERVER")
    if override:
        return override
    cc = _compiler()
    src = SOURCE.read_bytes()
    key = hashlib.sha256(src + repr((cc, CFLAGS)).encode()).hexdigest()[:16]
    exe = cache_dir() / f"live-server-{key}"
    if os.access(exe, os.X_OK):
        return str(exe)
    # Static when libc.a is there (fewer mappings of its own), else dynamic.
    errors = []
    for link in (["-static"], []):
        tmp = exe.with_name(f".{exe.name}.{os.getpid()}.tmp")
        try:
            r = subprocess.run([*cc, *CFLAGS, *link, "-o", str(tmp), str(SOURCE)],
                               capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise LiveServerError(f"cannot run the C compiler {cc[0]!r}: {e}") from e
        if r.returncode == 0:
            os.replace(tmp, exe)          # atomic: concurrent builders agree
            return str(exe)
        errors.append(r.stderr.strip())
    raise LiveServerError(f"could not compile {SOURCE}:\n{errors[-1]}")


# --- one server process --------------------------------------------------------------------

class Connection:
    """The socket to one server process (started here, or forked by another server)."""

    def __init__(self, sock, pid, proc=None, timeout=DEFAULT_TIMEOUT, errlog=None):
        self.sock = sock
        self.pid = pid
        # The Popen of a server we started; None for a forked one, which is our child too
        # (the server forks with CLONE_PARENT) and is reaped with os.waitpid.
        self.proc = proc
        self.returncode = None    # once reaped: the exit status, or -signal
        self.errlog = errlog      # the file its stderr goes to (shared with its forks)
        self.timeout = timeout
        sock.settimeout(timeout)

    @classmethod
    def start(cls, timeout=DEFAULT_TIMEOUT):
        exe = server_binary()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        errlog = tempfile.TemporaryFile()
        try:
            proc = subprocess.Popen([exe, str(theirs.fileno())], pass_fds=[theirs.fileno()],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=errlog, env={})
        except OSError as e:
            ours.close()
            errlog.close()
            raise LiveServerError(f"cannot start the live server {exe}: {e}") from e
        finally:
            theirs.close()
        return cls(ours, proc.pid, proc, timeout, errlog)

    @property
    def alive(self):
        return self.sock is not None

    def check_alive(self):
        """After exit (or a crash already reported), calls fail with ESRCH, as on the
        simulator's exited MM."""
        if self.sock is None:
            raise OSError(errno.ESRCH, os.strerror(errno.ESRCH))

    def call(self, op, *args, payload=b"", fd=None):
        """Send one request and wait for its answer."""
        self.check_alive()
        header = REQUEST.pack(op, len(payload), *args, *(0,) * (6 - len(args)))
        try:
            if fd is not None:
                socket.send_fds(self.sock, [header], [fd])
                header = b""
            self.sock.sendall(header + bytes(payload) if payload else header)
            head, fds = self._recv(RESPONSE.size, fds=True)
            ret, err, sig, code, length, addr = RESPONSE.unpack(head)
            data = self._recv(length)[0] if length else b""
        except socket.timeout:
            self.kill()
            raise LiveServerError(f"live server {self.pid} did not answer {Op(op).name} "
                                  f"within {self.timeout} s; it was killed") from None
        except (ConnectionError, EOFError) as e:
            raise ServerDied(self._obituary(op)) from e
        return Reply(ret, err, sig, code, addr, data, fds)

    def _recv(self, n, fds=False):
        chunks, got, received = [], 0, []
        while got < n:
            if fds:
                data, anc, _flags, _addr = self.sock.recvmsg(
                    n - got, socket.CMSG_SPACE(4), socket.MSG_CMSG_CLOEXEC)
                for level, kind, raw in anc:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                        received += struct.unpack(f"{len(raw) // 4}i", raw[:len(raw) // 4 * 4])
            else:
                data = self.sock.recv(min(n - got, 1 << 20))
            if not data:
                raise EOFError
            chunks.append(data)
            got += len(data)
        return b"".join(chunks), tuple(received)

    def wait_closed(self):
        """Read until the server's end closes: it has exited (exit_mm() runs before its
        descriptors are closed, so its address space is gone too)."""
        try:
            while self.sock.recv(4096):
                pass
        except socket.timeout:
            self.kill()

    def _obituary(self, op):
        self._drop()
        what = f"live server {self.pid} died during {Op(op).name}"
        rc = self._reap()
        if rc is not None and rc < 0:
            what += f" (killed by {signal.Signals(-rc).name})"
        elif rc is not None:
            what += f" (exit status {rc})"
        if self.errlog is not None:
            try:
                self.errlog.seek(0)
                err = self.errlog.read().decode(errors="replace").strip()
            except (OSError, ValueError):
                err = ""
            if err:
                what += f": {err}"
        return what

    def _drop(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _reap(self, timeout=5.0):
        """Wait for the server to end (SIGKILL it after timeout); its exit code, negative
        for a signal, like Popen.returncode."""
        if self.returncode is not None:
            return self.returncode
        if self.proc is not None:
            try:
                self.returncode = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.returncode = self.proc.wait()
            return self.returncode
        deadline = time.monotonic() + timeout
        while True:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:      # not ours to reap (or already reaped)
                return None
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
                return self.returncode
            if time.monotonic() > deadline:
                self._signal(signal.SIGKILL)
                deadline = float("inf")
            time.sleep(0.001)

    def _signal(self, sig):
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def kill(self):
        """SIGKILL the server (it is ours: we started it, or it is a fork of one) and reap."""
        self._drop()
        if self.returncode is None:
            self._signal(signal.SIGKILL)
        self._reap()

    def shutdown(self):
        """End the server: closing the socket makes it exit; then reap it."""
        self._drop()
        self._reap()
        if self.errlog is not None and self.proc is not None:
            self.errlog.close()
