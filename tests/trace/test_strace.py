"""The strace log parser on synthetic logs: the forms strace 6.x writes."""
import errno

import pytest

import ptengine as pt
from ptengine.trace import strace as S

THREADS = """\
100 execve("/bin/prog", ["prog", "a, b"], 0x7fffffffe700 /* 3 vars */) = 0
100 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0 <unfinished ...>
101 mprotect(0x7ffff7000000, 4096, PROT_NONE) = 0
100 <... mmap resumed>) = 0x7ffff7fc0000
101 mmap(NULL, 4096, PROT_READ, MAP_SHARED, 3</tmp/a, b\\x3e.so>, 0x1000) = -1 ENOMEM (Cannot allocate memory)
101 --- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_MAPERR, si_addr=NULL} ---
100 exit_group(0)                     = ? ERESTARTNOINTR (To be restarted) (INJECTED)
100 --- stopped by SIGSTOP ---
101 +++ killed by SIGSEGV +++
100 exit_group(0)                     = ?
100 +++ exited with 0 +++
"""


def test_unfinished_resumed_pairs_errno_and_events():
    calls, events = S.parse(THREADS.splitlines(True))
    names = [(c.pid, c.name) for c in calls]
    # Completion order; the INJECTED exit_group (made by `ptengine record`) is gone.
    assert names == [(100, "execve"), (101, "mprotect"), (100, "mmap"), (101, "mmap"),
                     (100, "exit_group")]
    mmap = calls[2]
    assert (mmap.entry, mmap.line) == (2, 4)
    assert mmap.args == ["NULL", "8192", "PROT_READ|PROT_WRITE",
                         "MAP_PRIVATE|MAP_ANONYMOUS", "-1", "0"]
    assert mmap.ret == 0x7ffff7fc0000
    failed = calls[3]
    assert failed.ret == -errno.ENOMEM and failed.errno == errno.ENOMEM
    assert S.fd(failed.args[4]) == (3, "/tmp/a, b>.so")
    assert S.value(failed.args[5]) == 0x1000
    assert calls[4].ret is None
    assert S.split_args(calls[0].argtext)[1] == '["prog", "a, b"]'
    assert [e.kind for e in events] == ["signal", "signal", "exit", "exit"]
    assert events[2].pid == 101 and "SIGSEGV" in events[2].text


def test_numeric_and_symbolic_flags_agree():
    """strace -X raw prints numbers; the default prints names; both decode alike."""
    raw, _ = S.parse(["7 mmap(0, 0x1000, 0x3, 0x22, -1, 0) = 0x7f0000000000\n"])
    sym, _ = S.parse(["7 mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, "
                      "-1, 0) = 0x7f0000000000\n"])
    decode = lambda c: (S.value(c.args[0]), S.value(c.args[1]), S.flags(c.args[2]),
                        S.flags(c.args[3]))
    assert decode(raw[0]) == decode(sym[0]) == (0, 4096, pt.PROT_READ | pt.PROT_WRITE,
                                                pt.MAP_PRIVATE | pt.MAP_ANONYMOUS)
    # An advice strace 6.1 has no name for, and huge-page size flags.
    assert S.value("0x66 /* MADV_??? */") == pt.MADV_GUARD_INSTALL
    assert S.flags("MADV_GUARD_REMOVE") == pt.MADV_GUARD_REMOVE
    assert S.flags("MAP_PRIVATE|MAP_ANONYMOUS|MAP_HUGETLB|MAP_HUGE_2MB") == \
        pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_HUGETLB | (21 << pt.MAP_HUGE_SHIFT)
    with pytest.raises(ValueError):
        S.flags("MAP_NO_SUCH_FLAG")


def test_iovec_arrays_whole_or_abbreviated():
    whole = "[{iov_base=0x7f0000000000, iov_len=4096}, {iov_base=0x7f0000002000, iov_len=8192}]"
    assert S.iovecs(whole) == [(0x7f0000000000, 4096), (0x7f0000002000, 8192)]
    # With a short -s strace prints the array as [...] or cuts it: not replayable.
    assert S.iovecs("[...]") is None
    assert S.iovecs("[{iov_base=0x7f0000000000, iov_len=4096}, ...]") is None
    calls, _ = S.parse([f"9 process_madvise(3<pid:9>, {whole}, 2, 0x66 /* MADV_??? */, 0)"
                        " = 12288\n"])
    assert calls[0].args[0] == "3<pid:9>" and calls[0].ret == 12288
    assert S.fd(calls[0].args[0]) == (3, "pid:9")


def test_log_without_pids_with_timestamps_and_durations():
    text = ('12:00:00.000001 mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)'
            ' = 0x7ffff7ff0000 <0.000012>\n'
            '12:00:00.000002 read(3</proc/7/maps>, "a) = 5\\n", 100) = 7 <0.000003>\n')
    calls, _ = S.parse(text.splitlines(True))
    assert [c.pid for c in calls] == [0, 0]
    assert calls[0].ret == 0x7ffff7ff0000
    # A ") = " inside the data read does not end the call early.
    assert calls[1].ret == 7 and S.string(calls[1].args[1]) == ("a) = 5\n", False)


def test_strings_and_escapes():
    assert S.string('"ab\\tc\\0"') == ("ab\tc\0", False)
    assert S.string('"abc"...') == ("abc", True)
    assert S.unescape("caf\\303\\251") == "café"


def test_bad_lines():
    with pytest.raises(S.ParseError) as e:
        S.parse(["1 mmap(NULL) = \n", ])
    assert e.value.line == 1
    with pytest.raises(S.ParseError):
        S.parse(["5 <... mmap resumed>) = 0\n"])
