"""ptengine.bench.callgrind: parsing callgrind_annotate, and the real counts where valgrind
is installed."""
import shutil

import pytest

from ptengine.bench import callgrind


ANNOTATE = """\
--------------------------------------------------------------------------------
Ir                   file:function
--------------------------------------------------------------------------------
11,141,936 (173.1%)  /src/walk.c:__pyx_f_8ptengine_4core_4walk__walk_table'2 [/x.so]
 2,924,882 (45.43%)  /src/pagetables.c:__pyx_pw_8ptengine_4core_10pagetables_10PageTables_33fault_anon [/x.so]
 1,176,308 (18.27%)  /src/pagetables.c:__pyx_pw_8ptengine_4core_10pagetables_10PageTables_25zap [/x.so]
        22 ( 0.00%)  /usr/include/python3.11/object.h:__pyx_pw_8ptengine_4core_10pagetables_10PageTables_33fault_anon
     1,371 ( 0.02%)  /src/pagetables.c:__pyx_f_8ptengine_4core_10pagetables_10PageTables__require_none [/x.so]
"""


def test_parse_callgrind_annotate():
    assert callgrind.parse_callgrind_annotate(ANNOTATE) == {"fault_anon": 2924904,
                                                          "zap": 1176308}


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_instruction_counts_with_callgrind():
    figures = callgrind.instruction_counts()
    assert set(figures["counts"]) == set(callgrind.WALKERS)
    pages = figures["bytes_walked"] // 4096
    # Every walker visits every page at least once: at least an instruction per page;
    # but a guard install over empty, whole 2 MiB spans writes one PMD entry per span
    # (the shared GUARD table): at least an instruction per 2 MiB.
    counts = dict(figures["counts"])
    assert counts.pop("install_guards") >= pages // 512, figures
    assert all(n >= pages for n in counts.values()), figures
