"""Read an `strace -f -y` log (strace 6.x) into calls (mirrors no kernel file).

A log line is `PID NAME(ARGS) = RESULT`, where a call of one thread may be cut in two by
other threads' lines: `PID NAME(ARGS <unfinished ...>` at entry and
`PID <... NAME resumed>REST) = RESULT` at exit. A call's text is the two halves joined;
it keeps both line numbers, since the kernel ran it somewhere between them. Without -f
there is no PID column (every call is the one process's). Timestamps (-t, -tt, -ttt) and
-T durations are tolerated. Signal (`--- SIG... ---`) and exit (`+++ ... +++`) lines are
kept as events; lines strace marks `(INJECTED)` were made by `ptengine record`, not by
the program, and are dropped.

Arguments are split at top level (strings, arrays, structures, comments and `3</path>` fd
decorations kept whole); `value()` and `flags()` turn strace's renderings (hex, decimal,
NULL, `A|B|0x10`, `0x66 /* MADV_??? */`) into numbers.
"""
import dataclasses
import errno as _errno
import re

from .. import constants as C

_PREFIX = re.compile(r"(?:\[pid +)?(\d+)\]? +(?:\d[\d:.]* +)?")
_NO_PID = re.compile(r"(?:\d[\d:.]* +)?")
# A whole call with a numeric result, the bulk of a log: one match instead of the steps.
_SIMPLE_CALL = re.compile(r"(\d+) +(\w+)\((.*)\) += (-?\d+|0x[0-9a-f]+)$")
_RESUMED = re.compile(r"<\.\.\. ([\w]+) resumed>")
_UNFINISHED = " <unfinished ...>"
_DURATION = re.compile(r" <\d+\.\d+>$")
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"(?:\.\.\.)?|/\*.*?\*/|<[^>]*>|[\[\]{}(),]|[^"\[\]{}(),</]+|.')
_RESULT = re.compile(r"(-?\d+|0x[0-9a-f]+|\?)(?:<(.*)>)?(?: (E[A-Z0-9_?]+) \((.*?)\))?"
                     r"( \(INJECTED\))?")
_ERRNO = {name: getattr(_errno, name) for name in dir(_errno) if name.startswith("E")}


@dataclasses.dataclass(slots=True)
class Call:
    """One completed system call. `ret` is the returned value as an int (for an error,
    -errno; None when strace printed `?`, e.g. exit_group); `fd_path` is the path -y
    printed after a returned descriptor."""
    line: int                 # the line it completed on (1-based)
    entry: int                # the line it started on (== line unless <unfinished ...>)
    pid: int
    name: str
    argtext: str
    ret: object
    fd_path: object = None
    _args: object = None

    @property
    def args(self):
        """The top-level arguments as strace printed them."""
        if self._args is None:
            self._args = split_args(self.argtext)
        return self._args

    @property
    def errno(self):
        return -self.ret if isinstance(self.ret, int) and -4096 < self.ret < 0 else 0

    @property
    def text(self):
        return f"{self.name}({self.argtext}) = {result_text(self.ret)}"


@dataclasses.dataclass(slots=True)
class Event:
    """A signal or exit line: `kind` is "signal" or "exit", `text` what strace printed."""
    line: int
    pid: int
    kind: str
    text: str


def result_text(ret):
    if ret is None:
        return "?"
    if -4096 < ret < 0:
        name = _errno.errorcode.get(-ret, str(-ret))
        return f"-1 {name}"
    return hex(ret) if ret > 0xFFFF else str(ret)


class ParseError(ValueError):
    def __init__(self, line, message):
        super().__init__(f"line {line}: {message}")
        self.line = line


def parse(lines):
    """(calls, events) of a log given as an iterable of lines. Calls are in the order
    they completed; a call left unfinished at the end of the log (the process died in
    it) is dropped, as it returned nothing."""
    calls, events = [], []
    pending = {}                  # pid -> (entry line, name, text before <unfinished ...>)
    pid_re = None
    plain = False                 # "PID name(...": no timestamps, split without a regex
    for n, raw in enumerate(lines, 1):
        s = raw.rstrip("\n")
        if not s:
            continue
        if plain:
            m = _SIMPLE_CALL.match(s)
            if m is not None:
                calls.append(Call(n, n, int(m.group(1)), m.group(2), m.group(3),
                                  int(m.group(4), 0)))
                continue
        if s.startswith("strace: "):
            continue              # strace's own messages, if they went to the log
        if pid_re is None:
            pid_re = _PREFIX if _PREFIX.match(s) else _NO_PID
            m = pid_re.match(s)
            plain = pid_re is _PREFIX and m.group(0).count(" ") == len(m.group(0)) - \
                len(m.group(1))
        if plain:
            head, _, body = s.partition(" ")
            if head.isdigit():
                pid, body = int(head), body.lstrip(" ")
            else:
                pid, body = 0, s
        else:
            m = pid_re.match(s)
            pid = int(m.group(1)) if pid_re is _PREFIX and m else 0
            body = s[m.end():] if m else s
        if body.startswith("---") or body.startswith("+++"):
            kind = "signal" if body.startswith("---") else "exit"
            events.append(Event(n, pid, kind, body.strip("-+ ")))
            continue
        if body.endswith(_UNFINISHED):
            head = body[:-len(_UNFINISHED)]
            name = head[:head.find("(")]
            pending[pid] = (n, name, head[len(name) + 1:])
            continue
        r = _RESUMED.match(body)
        if r:
            start = pending.pop(pid, None)
            if start is None:
                raise ParseError(n, f"resumed {r.group(1)} of pid {pid} never started")
            entry, name, head = start
            body = f"{name}({head}{body[r.end():]}"
        else:
            entry = n
        call = _call(n, entry, pid, body)
        if call is not None:
            calls.append(call)
    return calls, events


def _call(n, entry, pid, body):
    if body[-1] == ">":
        body = _DURATION.sub("", body)
    i = body.rfind(" = ")
    open_ = body.find("(")
    if i < 0 or open_ <= 0:
        if body.endswith(")") or "exited" in body:
            return None           # e.g. "exit(0)" cut off by the process's death
        raise ParseError(n, f"not a system call line: {body[:80]!r}")
    close = body.rfind(")", 0, i)
    result = body[i + 3:]
    if " " not in result and "<" not in result and result != "?":
        try:                      # the common case: a number
            return Call(n, entry, pid, body[:open_], body[open_ + 1:close], int(result, 0))
        except ValueError:
            pass
    m = _RESULT.fullmatch(body, i + 3)
    if m is None:
        raise ParseError(n, f"unreadable result {body[i + 3:][:60]!r}")
    if m.group(5):
        return None               # made by `ptengine record`, not by the program
    name = body[:open_]
    value, path, err = m.group(1), m.group(2), m.group(3)
    if value == "?":
        ret = None
    elif err:
        ret = -_ERRNO.get(err, 0) if err in _ERRNO else -4095
    else:
        ret = int(value, 0)
    return Call(n, entry, pid, name, body[open_ + 1:close], ret, path)


def split_args(text):
    """Top-level arguments of a call's text, each stripped ('a, [b, c], "d, e"' -> 3)."""
    if '"' not in text and "[" not in text and "{" not in text and "<" not in text \
            and "/*" not in text:
        return text.split(", ") if text else []    # strace's separator, nothing nested
    out, cur, depth = [], [], 0
    for tok in _TOKEN.findall(text):
        if tok in "([{" and len(tok) == 1:
            depth += 1
        elif tok in ")]}" and len(tok) == 1:
            depth -= 1
        elif tok == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(tok)
    if cur or out:
        out.append("".join(cur).strip())
    return out


# --- values ---------------------------------------------------------------------------------
_COMMENT = re.compile(r"\s*/\*.*?\*/")
# strace names that ptengine.constants does not carry, or carries under another name.
_EXTRA = {"MAP_FILE": 0, "MAP_UNINITIALIZED": C.MAP_UNINITIALIZED, "MLOCK_ONFAULT": 1,
          "MREMAP_MAYMOVE": 1, "MREMAP_FIXED": 2, "MREMAP_DONTUNMAP": 4}
_HUGE = re.compile(r"MAP_HUGE_(\d+)([KMG])B")


def value(text):
    """An integer argument: hex, decimal, octal, NULL, or a symbolic one (flags())."""
    try:
        return int(text, 0)           # the common case, first: replay parses every call
    except ValueError:
        pass
    if "/*" in text:
        text = _COMMENT.sub("", text).strip()
    if text == "NULL":
        return 0
    try:
        return int(text, 0)
    except ValueError:
        pass
    if text.startswith("0") and text.isdigit():
        return int(text, 8)
    return flags(text)


_FLAGS_SEEN = {}


def flags(text):
    """`A|B|0x10` -> the OR of the names' values (ptengine.constants, or strace's own)."""
    out = _FLAGS_SEEN.get(text)
    if out is None:
        out = _FLAGS_SEEN[text] = _flags(text)
    return out


def _flags(text):
    text = _COMMENT.sub("", text).strip()
    out = 0
    for part in text.split("|"):
        part = part.strip()
        if not part:
            continue
        if part[0].isdigit() or part[0] == "-":
            out |= int(part, 0) if not (part.startswith("0") and part.isdigit()) \
                else int(part, 8)
            continue
        v = _EXTRA.get(part)
        if v is None:
            v = getattr(C, part, None)
        if v is None:
            m = _HUGE.fullmatch(part)
            if m:
                size = int(m.group(1)) << {"K": 10, "M": 20, "G": 30}[m.group(2)]
                v = (size.bit_length() - 1) << C.MAP_HUGE_SHIFT
        if v is None:
            raise ValueError(f"unknown flag {part!r}")
        out |= v
    return out


def fd(text):
    """(number, path or None) of a descriptor argument: `3</usr/lib/x.so>`, `3`, `-1`,
    or `3<pid:1234>` for a pidfd. strace escapes bytes in the path as \\xNN."""
    i = text.find("<")
    if i < 0:
        return int(text, 0), None
    path = text[i + 1:text.rfind(">")]
    return int(text[:i]), unescape(path)


def string(text):
    """A quoted string argument, unescaped; a trailing `...` (truncated by -s) stays
    outside: returns (text, truncated)."""
    truncated = text.endswith("...")
    if truncated:
        text = text[:-3]
    if not (text.startswith('"') and text.endswith('"')):
        raise ValueError(f"not a string: {text[:40]!r}")
    return unescape(text[1:-1]), truncated


_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|[0-7]{1,3}|.)")
_SIMPLE = {"n": "\n", "t": "\t", "r": "\r", "v": "\v", "f": "\f", "\\": "\\", '"': '"',
           "'": "'", "a": "\a", "b": "\b"}


def unescape(s):
    """strace's escapes (\\xNN, octal, \\n ...) back to the bytes they stand for; the result
    is decoded as UTF-8 with surrogateescape, as os.fsdecode() does for paths."""
    if "\\" not in s:
        return s
    out = bytearray()
    pos = 0
    for m in _ESCAPE.finditer(s):
        out += s[pos:m.start()].encode("utf-8", "surrogateescape")
        e = m.group(1)
        if e[0] == "x":
            out.append(int(e[1:], 16))
        elif e[0].isdigit():
            out.append(int(e, 8) & 0xFF)
        else:
            out += _SIMPLE.get(e, e).encode()
        pos = m.end()
    out += s[pos:].encode("utf-8", "surrogateescape")
    return out.decode("utf-8", "surrogateescape")


_IOVEC = re.compile(r"\{iov_base=(0x[0-9a-f]+|NULL)[^,]*, iov_len=(\d+)\}")


def iovecs(text):
    """[(base, length)] of an iovec array argument; None when strace abbreviated it
    (`[...]`, or `...` inside: -s was shorter than the array)."""
    if "..." in _COMMENT.sub("", text).replace('"...', ""):
        return None
    return [(0 if b == "NULL" else int(b, 16), int(n)) for b, n in _IOVEC.findall(text)]
