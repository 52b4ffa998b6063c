"""The README's Python example runs and says what it claims."""
import pathlib
import re
import signal

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_example_runs():
    text = README.read_text()
    block = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    namespace = {}
    exec(compile(block, "README.md", "exec"), namespace)
    mm, p = namespace["mm"], namespace["p"]
    assert mm.access(p) == signal.SIGSEGV
    assert mm.map_count == 1
    assert mm.status()["VmPTE"] == 12
    assert "VmFlags: rd wr mr mw me gu ac" in mm.smaps()


def test_readme_quick_start_has_two_commands():
    text = README.read_text()
    quick = re.search(r"## Quick start.*?```sh\n(.*?)```", text, re.S).group(1)
    lines = [l for l in quick.splitlines() if l.strip()]
    assert len(lines) == 2
    assert "ptengine compare" in lines[0] and "pytest" in lines[1]
