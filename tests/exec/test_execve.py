"""system.execve() against the kernel: real programs of this host, stopped at their first
instruction with ASLR off, and their /proc/PID/maps, smaps and status compared line for
line (inode and device columns included) with the simulator's.

launcher.c (built here) forks, turns randomisation off (personality ADDR_NO_RANDOMIZE),
PTRACE_TRACEMEs and execs the program with the environment it was given; at the exec stop
it prints what the kernel shows. Both sides get the same path, argv, environment and
RLIMIT_STACK, the inputs the layout depends on. The C programs are built here too: a PIE,
a non-PIE, a static and a static-PIE one (the static ones need libc.a; without it they
skip and say so). python3, /bin/true, node and java run where installed.
"""
import errno
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import ptengine
from ptengine import procfs
from ptengine.constants import PAGE_SIZE, TASK_SIZE

HERE = Path(__file__).parent
P = PAGE_SIZE
MiB = 1 << 20
ENV = {"LC_ALL": "C", "PTENGINE_EXEC_TEST": "1"}
# A program with a bss far past its file pages (a separate anonymous VMA) that reads it,
# so the compiler keeps it.
PROGRAM_C = r"""
#include <stdio.h>
static volatile char bss[300000];
int main(int argc, char **argv) { bss[argc * 4096] = 1; printf("%d\n", bss[4096]); return 0; }
"""
C_BUILDS = {"pie": ["-fPIE", "-pie"], "nopie": ["-no-pie"], "static": ["-static"],
            "static-pie": ["-static-pie"]}


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """{name: path} of the launcher and the C programs that could be built here."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler: the launcher cannot be built")
    out = tmp_path_factory.mktemp("exec")
    src = out / "program.c"
    src.write_text(PROGRAM_C)
    paths = {}
    subprocess.run([cc, "-O2", "-o", str(out / "launcher"), str(HERE / "launcher.c")],
                   check=True)
    paths["launcher"] = str(out / "launcher")
    for name, flags in C_BUILDS.items():
        exe = out / f"program-{name}"
        if subprocess.run([cc, "-O2", *flags, "-o", str(exe), str(src)],
                          capture_output=True).returncode == 0:
            paths[name] = str(exe)
    return paths


def host_programs():
    """(id, path) of the installed programs to check: the interpreter running the tests
    (its real file: a wrapper script would be run by binfmt_script), /usr/bin/python3,
    /bin/true (a symlinked directory on merged-/usr systems), node and java (symlinks to
    their real files on Debian)."""
    progs = [("python3", os.path.realpath(sys.executable)), ("true", "/bin/true")]
    for name in ("/usr/bin/python3", "node", "java"):
        path = shutil.which(name)
        progs.append((os.path.basename(name), path))
    return progs


def kernel_exec(built, path, argv, env=ENV, syscalls=(), stack_rlimit=None):
    """(results, maps, smaps, status) of `path` at its exec stop, after it made
    `syscalls` ("NR,ARG,..." in hex, launcher.c -s) there."""
    def limit():
        if stack_rlimit is not None:
            resource.setrlimit(resource.RLIMIT_STACK, (stack_rlimit, stack_rlimit))
    args = [built["launcher"]]
    for call in syscalls:
        args += ["-s", call]
    r = subprocess.run([*args, "--", path, *argv[1:]], env=env, capture_output=True,
                       text=True, preexec_fn=limit, check=True)
    parts = r.stdout.split("----\n")
    results = [int(x, 16) for x in parts.pop(0).split()] if syscalls else []
    maps, smaps, status = parts
    return results, maps, smaps, procfs.parse_status(status)


def assert_same(kernel_text, sim_text):
    assert sim_text.splitlines() == kernel_text.splitlines()


def check_program(built, path, argv=None, env=ENV, stack_rlimit=None):
    argv = argv or [path, "x"]
    _, maps, smaps, status = kernel_exec(built, path, argv, env, stack_rlimit=stack_rlimit)
    options = {} if stack_rlimit is None else {
        "stack_rlimit": resource.RLIM_INFINITY if stack_rlimit == resource.RLIM_INFINITY
        else stack_rlimit}
    mm = ptengine.System().execve(path, argv, envp=env, **options)
    assert_same(maps, mm.maps())
    assert_same(smaps, mm.smaps())
    sim = mm.status()
    for key in ("VmSize", "VmRSS", "RssAnon", "RssFile", "VmData", "VmStk", "VmPTE"):
        assert sim[key] == status[key], key
    # The gate is in maps but no VMA of the mm.
    assert mm.map_count == len(maps.splitlines()) - 1
    mm.check()
    return mm, maps


@pytest.mark.parametrize("name", list(C_BUILDS))
def test_c_program(built, name):
    """A PIE at 0x555555554000, a non-PIE at its link address, a static program without
    interpreter and a static PIE (placed top-down, its break at ELF_ET_DYN_BASE): each
    segment, the bss past the file (its own anonymous VMA), ld.so, the vDSO, [stack] and
    [vsyscall] as the kernel has them."""
    if name not in built:
        pytest.skip(f"cc cannot link a {name} program here"
                    + (" (no libc.a: install libc6-dev's static library)"
                       if "static" in name else ""))
    mm, maps = check_program(built, built[name])
    bss = [e for e in procfs.parse_maps(maps) if e.file is None and not e.name]
    assert bss, "the 300 kB bss is an anonymous VMA of its own"
    if name == "static-pie":
        assert mm.start_brk == (TASK_SIZE // 3 * 2 + P - 1) & ~(P - 1)
    else:
        assert mm.start_brk == bss[-1].end


@pytest.mark.parametrize("name,path", host_programs(), ids=[n for n, _ in host_programs()])
def test_host_program(built, name, path):
    if path is None:
        pytest.skip(f"{name} is not installed")
    check_program(built, path)


@pytest.mark.parametrize("env_bytes", [3900, 5000, 100_000])
def test_stack_grows_with_the_environment(built, env_bytes):
    """The strings decide where [stack] starts: one page of them and 128 KiB below, then
    more pages as the environment grows (one variable may hold up to 128 KiB)."""
    env = dict(ENV, BIG="x" * env_bytes)
    _, maps = check_program(built, built["pie"] if "pie" in built else "/bin/true", env=env)
    stack = [e for e in procfs.parse_maps(maps) if e.name == "[stack]"][0]
    assert stack.size > 32 * P + env_bytes


@pytest.mark.parametrize("limit", [16 * MiB, 512 * MiB, resource.RLIM_INFINITY],
                         ids=["16M", "512M", "unlimited"])
def test_stack_rlimit_moves_mmap_base(built, limit):
    """mmap_base() keeps the stack limit plus the guard gap free below the stack (at least
    128 MiB, at most 5/6 of the address space): ld.so and the vDSO move with it."""
    check_program(built, "/bin/true", stack_rlimit=limit)


def test_errors_match_the_kernel(tmp_path):
    """What exec refuses: a missing file, a directory, a file without execute permission,
    and (with the execute bit) something that is no ELF and no script."""
    text = tmp_path / "text"
    text.write_text("hello\n")
    noexec = tmp_path / "noexec"
    noexec.write_bytes(Path("/bin/true").read_bytes())
    os.chmod(text, 0o755)
    os.chmod(noexec, 0o644)
    cases = [str(tmp_path / "missing"), str(tmp_path), str(text)]
    if os.geteuid() != 0:            # root may execute anything with an x bit, none here
        cases.append(str(noexec))
    for path in cases:
        with pytest.raises(OSError) as kernel:
            subprocess.run([path], env=ENV)
        with pytest.raises(OSError) as sim:
            ptengine.System().execve(path)
        assert sim.value.errno == kernel.value.errno, path


def test_argument_list_too_long(built):
    """One string over MAX_ARG_STRLEN (32 pages) is E2BIG on both."""
    env = dict(ENV, BIG="x" * (32 * P))
    with pytest.raises(OSError) as kernel:
        subprocess.run(["/bin/true"], env=env)
    with pytest.raises(OSError) as sim:
        ptengine.System().execve("/bin/true", envp=env)
    assert kernel.value.errno == sim.value.errno == errno.E2BIG


def test_open_gives_the_host_files_identity(tmp_path):
    """system.open(): one inode per real path (symlinks resolved), with the host file's
    size, device and inode; an unknown path is an empty file of its own."""
    system = ptengine.System()
    f = system.open("/bin/true")
    st = os.stat("/bin/true")
    assert f.path == os.path.realpath("/bin/true")
    assert (f.size, f.ino, f.dev) == (st.st_size, st.st_ino,
                                      (os.major(st.st_dev), os.minor(st.st_dev)))
    assert system.open(os.path.realpath("/bin/true")).inode is f.inode
    other = system.open("/nonexistent/lib/libfoo.so")
    assert other.path == "/nonexistent/lib/libfoo.so" and other.size == 0
    other.truncate(5 * P)
    assert system.open("/nonexistent/lib/libfoo.so").size == 5 * P
    with pytest.raises(TypeError):
        system.open(3)


def test_fork_keeps_the_gate(built):
    """A child of an exec'd process shows [vsyscall] too (it is the architecture's)."""
    mm = ptengine.System().execve("/bin/true")
    child = mm.fork()
    assert child.maps() == mm.maps()
    assert child.maps().splitlines()[-1].endswith("[vsyscall]")
    child.exit()
