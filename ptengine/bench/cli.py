"""`ptengine bench [--check | --update | --compare]` (mirrors no kernel file).

ptengine.cli registers add_bench_arguments and run_bench as its `bench` subcommand.
"""
import argparse
import sys

from . import Unavailable, checkout
from .baseline import check, update
from .ratios import DEFAULT_MARGIN, compare


def add_bench_arguments(p):
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="recompute the deterministic figures and fail on any difference "
                           "from the baseline (the default)")
    mode.add_argument("--update", action="store_true",
                      help="rewrite the baseline with the figures of this tree")
    mode.add_argument("--compare", action="store_true",
                      help="run the benchmark suite (autosaved) and fail when a ratio "
                           "worsened by more than --margin against the last saved run")
    p.add_argument("--baseline", metavar="FILE",
                   help="the baseline file (default: bench/baseline.json of the checkout "
                        "holding the working directory)")
    p.add_argument("--margin", type=float, default=DEFAULT_MARGIN, metavar="FRACTION",
                   help="--compare: how much a ratio may worsen (default 0.25 = 25%%)")
    p.add_argument("--storage", metavar="DIR",
                   help="--compare: pytest-benchmark's storage (default: .benchmarks of "
                        "the checkout)")
    p.add_argument("pytest_args", nargs="*", metavar="PYTEST_ARG",
                   help="--compare: extra pytest arguments (after --), e.g. -- -k walkers")


def run_bench(args):
    """Run the subcommand parsed by add_bench_arguments(); returns the exit status."""
    if args.pytest_args and not args.compare:
        print("ptengine bench: pytest arguments (after --) are only for --compare",
              file=sys.stderr)
        return 2
    try:
        if args.compare:
            root = checkout.find()
        else:
            path = args.baseline or checkout.baseline_path()
    except Unavailable as e:
        hint = ("--compare runs the benchmark suite of a checkout: run it there"
                if args.compare else "run from the checkout, or name the baseline with "
                                     "--baseline FILE")
        print(f"ptengine bench: {e}; {hint}", file=sys.stderr)
        return 2
    if args.compare:
        return compare(root, args.storage or root / ".benchmarks", args.margin,
                       args.pytest_args)
    return update(path) if args.update else check(path)


def bench_main(argv=None):
    """`ptengine bench [--check | --update | --compare]`; returns the exit status."""
    p = argparse.ArgumentParser(prog="ptengine bench",
                                description="Regression tracking: deterministic figures "
                                            "against a baseline, timing ratios against the "
                                            "last saved run.")
    add_bench_arguments(p)
    return run_bench(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(bench_main())
