"""System (ptengine/system.py): what it shows at a prompt."""
import ptengine
from ptengine import MAP_SHARED, PAGE_SIZE, PROT_READ


def test_repr_counts_processes_and_files_in_use():
    system = ptengine.System()
    assert repr(system) == "<System profile=reference processes=0 files=0>"
    parent, other = system.spawn(), system.spawn()
    f = system.create_file("data.bin", size=PAGE_SIZE)
    assert repr(system) == "<System profile=reference processes=2 files=1>"
    # A mapping keeps its file in use after the caller drops it, as the kernel's VMA keeps
    # its struct file; an exited process is gone.
    parent.mmap(0, PAGE_SIZE, PROT_READ, MAP_SHARED, f, 0)
    del f
    other.exit()
    assert repr(system) == "<System profile=reference processes=1 files=1>"
    parent.exit()
    assert repr(system) == "<System profile=reference processes=0 files=0>"


def test_repr_names_the_profile():
    assert repr(ptengine.System(profile="android")).startswith("<System profile=android ")
