"""`ptengine bench`: regression tracking of the simulator (mirrors no kernel file).

Two kinds of regression are tracked, each the way it can be judged on a noisy machine:

* Deterministic figures, kept in a committed baseline (bench/baseline.json of a checkout):
  - the VMA count, VmPTE, RSS and guard pages left by a fixed set of scenarios, with the
    syscalls each made and the errors they got (scenarios.py);
  - the same for every workload model of `ptengine.workloads` under every strategy, at its
    suite size with the scale parameter capped (scenarios.py);
  - the instructions the compiled walkers execute on a fixed input, counted by valgrind's
    callgrind on a small driver (callgrind.py, when valgrind is installed). Instruction
    counts depend on the compiler and Cython, so the baseline records the toolchain and
    counts made with another toolchain are reported, not compared.
  `--check` recomputes them and exits 1 on any difference from the baseline, printing each
  one; `--update` writes the baseline afresh (sections that cannot be computed here are
  kept as they were): baseline.py.

* Timing, judged on ratios (ptengine / kernel, / floor, 1M / 1K), never on absolute times:
  `--compare` runs the benchmark suite (`pytest bench --benchmark-enable`) with
  pytest-benchmark's autosave and exits 1 when a ratio is worse than in the previous saved
  run by more than `--margin` (25% by default): ratios.py.

The baseline, the benchmark suite and its saved runs belong to a source checkout, found
from the working directory (checkout.py), never from where the package is installed.
Exit status: 0 ok, 1 a regression (or difference), 2 the check could not run.
"""


class Unavailable(Exception):
    """A section of figures, or the checkout, is not available here (and why)."""
