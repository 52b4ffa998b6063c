"""The `ptengine` command line: subcommands in one dispatch table (mirrors no kernel file).

    ptengine compare [WORKLOAD ...] [--param k=v ...] [--strategies ...] [--scale ...]
                     [--live] [--plot FILE] [--json FILE] [--csv FILE] [--parquet FILE]
    ptengine sweep SPEC [--scheduler ADDRESS] [-o RESULTS.parquet] [--csv FILE]
                   [--plot FILE] [--resume]
    ptengine record -o RUN.strace [--maps-at-exit FILE] -- PROGRAM ARGS
    ptengine replay LOG [--start-maps FILE] [--check-maps FILE] [--rewrite STRATEGY]
                    [--json FILE] [--plot FILE]
    ptengine whatif MAPS_OR_SMAPS... | --pid PID... | --all [--json FILE]

A subcommand is a `Command(help, add_arguments, run)` entry in COMMANDS; `run(args)`
returns the exit status.
"""
import argparse
import collections
import json
import os
import sys

from . import __version__

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
    p.add_argument("--csv", metavar="FILE", help="write the results table (one row per run)")
    p.add_argument("--parquet", metavar="FILE", help="write the results table as Parquet")
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

    from . import live
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
        if not live.available():
            print("ptengine compare: --live needs a host kernel with MADV_GUARD_INSTALL "
                  "(ptengine.live.available() is False)", file=sys.stderr)
            return 2
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
    checks = []          # (simulator under the host's profile, live) where the model's differs
    mismatch = 0
    with tqdm(total=total, unit="run", disable=args.no_progress, file=sys.stderr,
              leave=False) as bar:
        for wl, p in plan:
            # A model runs under its system's profile; the host checks it only where the
            # host is that system in every respect the model's figures depend on.
            unchecked = live.unchecked(wl.host_profile, wl.profile_fields) if args.live else []
            got = {}
            for backend in backends + (["host"] if unchecked else []):
                got[backend] = []
                for s in strategies:
                    bar.set_description(f"{wl.name} {wl.scale}={p[wl.scale]} {s} [{backend}]")
                    got[backend].append(W.run(
                        wl.name, s, p, small=default_suite,
                        backend="live" if backend == "live" else "sim",
                        max_map_count=args.max_map_count if backend != "live" else None,
                        profile=live.host_profile() if backend == "host" else None,
                        record_calls=args.live, batch=True))
                    if backend != "host":
                        bar.update(1)
            checked = got.get("host", got["sim"])
            groups.append((got["sim"], None if unchecked else got.get("live")))
            bar.clear()
            print(report.format_table(got["sim"], None if unchecked else got.get("live")))
            print(flush=True)
            if unchecked:
                checks.append((checked, got["live"]))
                print(f"note: {wl.name} models a system with the {wl.profile!r} host profile, "
                      f"which this host cannot check: {'; '.join(unchecked)}. The live runs "
                      f"are compared with the simulator under the host's profile:")
                print(report.format_table(checked, got["live"]))
                print(flush=True)
            if got.get("live"):
                mismatch += sum(bool(report.mismatches(a, b))
                                for a, b in zip(checked, got["live"]))
    if mismatch:
        print(f"!!! {mismatch} run(s) disagree between the simulator and the host kernel "
              f"(see the MISMATCH lines above)", file=sys.stderr)
    if args.json:
        report.write_json(args.json, report.to_json(groups + checks, live=args.live))
        print(f"wrote {args.json}")
    if args.csv or args.parquet or args.plot:
        from .workloads import plots, table
        results = table.frame(report.rows(groups))
        for path in (args.csv, args.parquet):
            if path:
                table.write(results, path)
                print(f"wrote {path}")
        if args.plot:
            plots.plot(results, args.plot)
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
    from .bench.cli import add_bench_arguments as add
    add(p)


def cmd_bench(args):
    from .bench.cli import run_bench
    return run_bench(args)


# --- sweep -----------------------------------------------------------------------------
def add_sweep_arguments(p):
    p.add_argument("spec", nargs="?", metavar="SPEC", help="the sweep's TOML file")
    p.add_argument("--example", action="store_true", help="print a commented SPEC")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on this Dask scheduler (tcp://HOST:PORT); default: a local "
                        "cluster, one worker process per core")
    p.add_argument("-o", "--output", metavar="RESULTS.parquet",
                   help="the results table (default: SPEC's name with .parquet)")
    p.add_argument("--csv", metavar="FILE", help="also write the table as CSV")
    p.add_argument("--plot", metavar="FILE", help="write the figures (.png, .svg, .pdf)")
    p.add_argument("--resume", action="store_true",
                   help="keep the rows already in the output file and run only the rest")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def cmd_sweep(args):
    """Run a SPEC on Dask; exit 1 when any row carries an error, 2 on a bad SPEC."""
    from . import sweep
    from .workloads import plots, table
    if args.example:
        print(sweep.EXAMPLE, end="")
        return 0
    if not args.spec:
        print("ptengine sweep: give a SPEC (`ptengine sweep --example` prints one)",
              file=sys.stderr)
        return 2
    output = args.output or os.path.splitext(os.path.basename(args.spec))[0] + ".parquet"
    try:
        spec = sweep.load(os.path.abspath(args.spec))
        sweep.plan(spec)                       # every error before a cluster starts
    except (sweep.SpecError, OSError) as e:
        print(f"ptengine sweep: {e}", file=sys.stderr)
        return 2
    resume = output if args.resume and os.path.exists(output) else None
    try:
        results = sweep.run(spec, args.scheduler, resume=resume, progress=not args.no_progress)
    except (RuntimeError, OSError) as e:       # no worker, no connection, wrong ptengine
        print(f"ptengine sweep: {e}", file=sys.stderr)
        return 2
    table.write(results, output)
    written = [output]
    if args.csv:
        table.write(results, args.csv)
        written.append(args.csv)
    failed = results[results["error"].notna()]
    if args.plot and len(failed) < len(results):
        plots.plot(results, args.plot)
        written.append(args.plot)
    print(f"{len(results)} rows, {results['cell_id'].nunique()} cells, {len(failed)} with "
          f"an error; wrote {', '.join(written)}")
    for _, row in failed.head(10).iterrows():
        print(f"  error: {row['workload']} {row['strategy']} cell {row['cell_id']}: "
              f"{row['error']}")
    return 1 if len(failed) else 0


# --- record ----------------------------------------------------------------------------
def add_record_arguments(p):
    p.add_argument("-o", "--output", required=True, metavar="RUN.strace",
                   help="the strace log to write")
    p.add_argument("--maps-at-exit", metavar="FILE",
                   help="save the program's /proc/PID/maps just before it exits (and its "
                        "smaps as FILE.smaps)")
    p.add_argument("--timeout", type=float, metavar="S", help="kill the program after S s")
    p.add_argument("program", nargs=argparse.REMAINDER, metavar="-- PROGRAM ARGS",
                   help="the program to run")


def cmd_record(args):
    """Run a program with ASLR off under strace; exit with the program's status."""
    from .trace import record
    argv = args.program[1:] if args.program[:1] == ["--"] else args.program
    if not argv:
        print("ptengine record: no program given (ptengine record -o LOG -- PROGRAM ARGS)",
              file=sys.stderr)
        return 2
    try:
        rec = record.record(argv, args.output, args.maps_at_exit, timeout=args.timeout)
    except (OSError, ValueError) as e:
        print(f"ptengine record: {e}", file=sys.stderr)
        return 2
    if rec.untraced:
        print(f"note: this strace cannot trace {', '.join(rec.untraced)}; such calls are "
              f"not in the log", file=sys.stderr)
    if args.maps_at_exit and rec.maps is None:
        print("ptengine record: the program ended without exit_group (killed, or its last "
              "thread called exit): no maps saved", file=sys.stderr)
    print(f"wrote {args.output}" + (f" and {rec.maps}" if rec.maps else ""), file=sys.stderr)
    return rec.returncode


# --- replay ----------------------------------------------------------------------------
def add_replay_arguments(p):
    p.add_argument("log", metavar="LOG", help="an strace -f -y log (ptengine record)")
    p.add_argument("--start-maps", metavar="FILE",
                   help="the maps the program started from (/proc/PID/maps, smaps, or gdb "
                        "'info proc mappings' right after exec) instead of the exec layout")
    p.add_argument("--check-maps", metavar="FILE",
                   help="a maps dump of the program to compare with line for line")
    p.add_argument("--rewrite", choices=("guard", "guard_batched"),
                   help="also replay with PROT_NONE guard idioms turned into guard markers")
    p.add_argument("--faults", choices=("first-write", "none"), default="first-write",
                   help="which page faults replay assumes (strace shows none)")
    p.add_argument("--json", metavar="FILE", help="write machine-readable results")
    p.add_argument("--plot", metavar="FILE", help="plot VMAs over the run (.png or .svg)")


def cmd_replay(args):
    """Replay a log on the simulator; exit 0 only when every result and the maps match."""
    from .trace import maps, report, strace
    from .trace.replay import replay
    try:
        with open(args.log, encoding="utf-8", errors="surrogateescape") as f:
            calls, _ = strace.parse(f)
        start = maps.read(args.start_maps) if args.start_maps else None
        check_text = None
        if args.check_maps:
            with open(args.check_maps, encoding="utf-8", errors="surrogateescape") as f:
                check_text = f.read()
        result = replay(calls, start_maps=start, faults=args.faults)
        runs = {"as recorded": result}
        if args.rewrite:
            runs[args.rewrite] = replay(calls, start_maps=start, faults=args.faults,
                                        rewrite=args.rewrite)
    except (OSError, ValueError, RuntimeError) as e:
        print(f"ptengine replay: {e}", file=sys.stderr)
        return 2
    check = report.check_maps(result, check_text) if check_text is not None else None
    print(report.format_text(args.log, result, check))
    if args.rewrite:
        print()
        print(report.format_side_by_side(list(runs), list(runs.values())))
    if args.json:
        rewritten = {k: v for k, v in runs.items() if v is not result}
        report.write_json(args.json, report.to_json(result, check, rewritten))
        print(f"wrote {args.json}")
    if args.plot:
        report.plot(runs, args.plot)
        print(f"wrote {args.plot}")
    matched = not result.mismatches and not result.not_replayed and (check is None or
                                                                     check[1] == 0)
    return 0 if matched else 1


# --- whatif ---------------------------------------------------------------------------
def add_whatif_arguments(p):
    p.add_argument("snapshots", nargs="*", metavar="MAPS_OR_SMAPS",
                   help="/proc/PID/maps or smaps files (.gz accepted), of any architecture")
    p.add_argument("--pid", nargs="+", type=int, metavar="PID",
                   help="live processes of this host (their smaps and status)")
    p.add_argument("--all", action="store_true",
                   help="every process of this host that can be read")
    p.add_argument("--status", action="append", default=[], metavar="FILE",
                   help="the /proc/PID/status of a snapshot (its real VmPTE), in the order "
                        "of the snapshots")
    p.add_argument("--reservations", action="store_true",
                   help="also turn reservations into markers (to see what they would cost)")
    p.add_argument("--max-map-count", type=int, metavar="N",
                   help="vm.max_map_count for the headroom (default: 65530 for files, the "
                        "host's for --pid/--all)")
    p.add_argument("--json", metavar="FILE", help="write machine-readable results")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="list every PROT_NONE VMA and what it was taken for")


def cmd_whatif(args):
    """What each process would have with guard markers instead of PROT_NONE guard VMAs."""
    from .trace import whatif as W
    sources = bool(args.snapshots) + bool(args.pid) + bool(args.all)
    if sources != 1:
        print("ptengine whatif: give snapshot files, or --pid PID..., or --all",
              file=sys.stderr)
        return 2
    if len(args.status) > len(args.snapshots):
        print("ptengine whatif: more --status files than snapshots", file=sys.stderr)
        return 2
    skipped = 0
    try:
        if args.all:
            snaps, skipped = W.load_all(exclude={os.getpid()})
        elif args.pid:
            snaps = []
            for pid in args.pid:
                try:
                    snap = W.load_pid(pid, args.max_map_count)
                except OSError as e:
                    print(f"ptengine whatif: pid {pid}: {e.strerror}", file=sys.stderr)
                    skipped += 1
                    continue
                if snap is not None:
                    snaps.append(snap)
        else:
            statuses = args.status + [None] * (len(args.snapshots) - len(args.status))
            snaps = [W.load_file(path, status, args.max_map_count or W.DEFAULT_MAX_MAP_COUNT)
                     for path, status in zip(args.snapshots, statuses)]
    except (OSError, ValueError) as e:
        print(f"ptengine whatif: {e}", file=sys.stderr)
        return 2
    if args.max_map_count:
        for snap in snaps:
            snap.max_map_count = args.max_map_count
    reports = []
    for snap in snaps:
        try:
            reports.append(W.whatif(snap, reservations=args.reservations))
        except (OSError, ValueError) as e:     # a listing the simulator cannot hold
            print(f"ptengine whatif: {snap.source}: {e}", file=sys.stderr)
            skipped += 1
    print(W.format_text(reports, verbose=args.verbose, skipped=skipped))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(W.to_json(reports, skipped), f, indent=1)
        print(f"wrote {args.json}")
    return 0 if reports else 1


# --- dispatch --------------------------------------------------------------------------
COMMANDS = {
    "compare": Command("run workload models under each guard strategy and compare costs",
                       add_compare_arguments, cmd_compare),
    "verify": Command("fuzz the simulator against the host kernel, step by step",
                      add_verify_arguments, cmd_verify),
    "whatif": Command("what guard markers would do to real processes' VMAs and page tables "
                      "(from maps/smaps snapshots or live processes)",
                      add_whatif_arguments, cmd_whatif),
    "bench": Command("check deterministic figures against the baseline, or timing ratios "
                     "against the last saved run", add_bench_arguments, cmd_bench),
    "sweep": Command("run grids of workloads x parameters x strategies on Dask into a "
                     "Parquet table", add_sweep_arguments, cmd_sweep),
    "record": Command("run a program with ASLR off under strace, for replay",
                      add_record_arguments, cmd_record),
    "replay": Command("replay an strace log on the simulator and check every result",
                      add_replay_arguments, cmd_replay),
}


def build_parser():
    parser = argparse.ArgumentParser(
        prog="ptengine", description="Simulate Linux guard regions: PROT_NONE guard VMAs "
                                     "vs MADV_GUARD_INSTALL markers.")
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
