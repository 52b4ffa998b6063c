"""The `ptengine` command line: subcommands in one dispatch table.

    ptengine compare [WORKLOAD ...] [--param k=v ...] [--strategies ...] [--scale ...]
                     [--live] [--plot FILE] [--json FILE]

A subcommand is a `Command(help, add_arguments, run)` entry in COMMANDS; `run(args)`
returns the exit status.
"""
import argparse
import collections
import sys

Command = collections.namedtuple("Command", "help add_arguments run")


# --- compare ---------------------------------------------------------------------------
def _split(values):
    """Accept both '--x a b' and '--x a,b'."""
    out = []
    for v in values or []:
        out.extend(x for x in v.split(",") if x)
    return out


def add_compare_arguments(p):
    p.add_argument("workloads", nargs="*", metavar="WORKLOAD",
                   help="workload names or aliases (W1..W8); none: the default suite at "
                        "its small sizes")
    p.add_argument("--param", "-p", action="append", default=[], metavar="K=V",
                   help="set a model parameter (WORKLOAD.K=V for one workload only); "
                        "sizes accept K/M/G suffixes")
    p.add_argument("--strategies", "-s", nargs="+", metavar="S",
                   help="prot_none, guard, guard_batched (default: all three)")
    p.add_argument("--scale", nargs="+", metavar="N",
                   help="values of each workload's scale parameter (e.g. 100 1000 1e4)")
    p.add_argument("--live", action="store_true",
                   help="also run every call sequence on the host kernel (ptengine.live) "
                        "and flag disagreements")
    p.add_argument("--plot", metavar="FILE", help="write VMAs and page tables vs scale "
                                                 "(.png or .svg)")
    p.add_argument("--json", metavar="FILE", help="write machine-readable results")
    p.add_argument("--max-map-count", type=int, metavar="N",
                   help="the simulated vm.max_map_count (default 65530)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--list", action="store_true", help="list workloads and parameters")


def _parse_params(items, workloads):
    """--param values -> {workload name: {k: v}}; every key must belong to some workload."""
    per = {w.name: {} for w in workloads}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"ptengine compare: --param wants K=V, got {item!r}")
        key, value = item.split("=", 1)
        targets = workloads
        if "." in key:
            wname, key = key.split(".", 1)
            from .workloads import get
            targets = [w for w in workloads if w.name == get(wname).name]
        hit = [w for w in targets if key in w.defaults]
        if not hit:
            raise SystemExit(f"ptengine compare: no selected workload has parameter {key!r}")
        for w in hit:
            per[w.name][key] = value
    return per


def _scales(args, wl, params, default_suite):
    from .workloads import parse_int
    if args.scale:
        return [parse_int(s) for s in _split(args.scale)]
    base = wl.params(params, small=default_suite)[wl.scale]
    if args.plot:                      # a plot needs a few points: a ladder up to the size
        return sorted({max(1, base // 4), max(1, base // 2), base})
    return [base]


def _list_workloads():
    from .workloads import WORKLOADS
    from .workloads.report import param_text
    for w in WORKLOADS.values():
        print(f"{w.name:15} {w.alias:4} scale={w.scale:13} {w.summary}")
        print(f"{'':20} defaults: {param_text(w.defaults)}")
        if w.small:
            print(f"{'':20} suite:    {param_text(w.small)}")
    return 0


def cmd_compare(args):
    from tqdm import tqdm

    from . import workloads as W
    from .workloads import report

    if args.list:
        return _list_workloads()
    try:
        selected = [W.get(n) for n in args.workloads] if args.workloads else W.suite()
        strategies = [W.Strategy(s) for s in _split(args.strategies)] or list(W.STRATEGIES)
    except (KeyError, ValueError) as e:
        print(f"ptengine compare: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    if args.live:
        from . import live
        if not live.available():
            print("ptengine compare: --live needs a host kernel with MADV_GUARD_INSTALL "
                  "(ptengine.live.available() is False)", file=sys.stderr)
            return 2
    sim_options = {}
    if args.live:
        # Compare like with like: the simulated kernel gets the host's CONFIG_ANON_VMA_NAME.
        from .workloads.runner import host_anon_vma_name
        sim_options["anon_vma_name"] = host_anon_vma_name()
        if not sim_options["anon_vma_name"]:
            print("note: the host kernel has no CONFIG_ANON_VMA_NAME (set_anon_name is "
                  "EINVAL); the simulator runs without it too", flush=True)
    default_suite = not args.workloads
    params = _parse_params(args.param, selected)
    plan = []
    for wl in selected:
        try:
            wl.params(params[wl.name], small=default_suite)       # validate early
        except (KeyError, ValueError) as e:
            print(f"ptengine compare: {e.args[0] if e.args else e}", file=sys.stderr)
            return 2
        for scale in _scales(args, wl, params[wl.name], default_suite):
            plan.append((wl, dict(params[wl.name], **{wl.scale: scale})))
    backends = ["sim"] + (["live"] if args.live else [])
    total = len(plan) * len(strategies) * len(backends)
    groups = []
    mismatch = 0
    with tqdm(total=total, unit="run", disable=args.no_progress, file=sys.stderr,
              leave=False) as bar:
        for wl, p in plan:
            got = {}
            for backend in backends:
                got[backend] = []
                for s in strategies:
                    bar.set_description(f"{wl.name} {wl.scale}={p[wl.scale]} {s} [{backend}]")
                    sim = backend == "sim"
                    got[backend].append(W.run(
                        wl.name, s, p, small=default_suite, backend=backend,
                        max_map_count=args.max_map_count if sim else None,
                        system_options=sim_options if sim else None,
                        record_calls=args.live))
                    bar.update(1)
            groups.append((got["sim"], got.get("live")))
            bar.clear()
            print(report.format_table(got["sim"], got.get("live")))
            print(flush=True)
            if got.get("live"):
                mismatch += sum(bool(report.mismatches(a, b))
                                for a, b in zip(got["sim"], got["live"]))
    if mismatch:
        print(f"!!! {mismatch} run(s) disagree between the simulator and the host kernel "
              f"(see the MISMATCH lines above)", file=sys.stderr)
    if args.json:
        report.write_json(args.json, report.to_json(groups, live=args.live))
        print(f"wrote {args.json}")
    if args.plot:
        report.plot(groups, args.plot)
        print(f"wrote {args.plot}")
    return 0


# --- verify ----------------------------------------------------------------------------
def add_verify_arguments(p):
    p.add_argument("--seed", type=int, default=0, help="seed of the random sequences")
    p.add_argument("--sequences", type=int, default=200, help="how many sequences")
    p.add_argument("--steps", type=int, default=30, help="operations per sequence")
    p.add_argument("--keep-going", action="store_true",
                   help="go on after a divergence (default: stop at the first)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def cmd_verify(args):
    """Differential fuzzing against the host kernel; exit 1 on any divergence."""
    from . import live, verify
    if not live.available():
        print("ptengine verify: the host kernel has no guard regions (MADV_GUARD_INSTALL); "
              "nothing to compare against", file=sys.stderr)
        return 2
    summary = verify.verify(seed=args.seed, sequences=args.sequences, steps=args.steps,
                            progress=not args.no_progress, stop_at_first=not args.keep_going)
    print(f"{summary.sequences} sequences, {summary.steps} steps, "
          f"{len(summary.divergences)} divergences (seed {args.seed})")
    for k, d in summary.nondeterministic:
        print(f"note: sequence {k} diverged once and not on replay (a kernel outcome that "
              f"is not a function of the calls): {d}")
    for k, d in summary.divergences:
        print(f"\n--- sequence {k}: {d}\n")
        print(d.as_test(f"test_divergence_seed{args.seed}_seq{k}"))
    return 1 if summary.divergences else 0


# --- bench -----------------------------------------------------------------------------
def add_bench_arguments(p):
    from .regress import add_bench_arguments as add
    add(p)


def cmd_bench(args):
    from .regress import run_bench
    return run_bench(args)


# --- dispatch --------------------------------------------------------------------------
COMMANDS = {
    "compare": Command("run workload models under each guard strategy and compare costs",
                       add_compare_arguments, cmd_compare),
    "verify": Command("fuzz the simulator against the host kernel, step by step",
                      add_verify_arguments, cmd_verify),
    "bench": Command("check deterministic figures against the baseline, or timing ratios "
                     "against the last saved run", add_bench_arguments, cmd_bench),
}


def build_parser():
    parser = argparse.ArgumentParser(
        prog="ptengine", description="Simulate Linux guard regions: PROT_NONE guard VMAs "
                                     "vs MADV_GUARD_INSTALL markers.")
    from . import __version__
    parser.add_argument("--version", action="version", version=f"ptengine {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, cmd in COMMANDS.items():
        cmd.add_arguments(sub.add_parser(name, help=cmd.help, description=cmd.help))
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return COMMANDS[args.command].run(args)


if __name__ == "__main__":
    sys.exit(main())
