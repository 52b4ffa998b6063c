"""Replay an strace log in an order that reproduces it (mirrors no kernel file).

Calls of different threads overlap in the log when one is <unfinished ...> while another
completes; the kernel ran each atomically somewhere in its span, in an order the log does
not give. Replay runs them in completion order, and where a call's result differs, tries
running a call that overlaps it first; an order that makes the results agree is kept and
reported (`Result.reordered`). One replay in one order is replayer.py's Replayer, or
rewrite.py's GuardRewrite for a log whose PROT_NONE guards are rewritten to markers.
"""
from .replayer import Replayer
from .rewrite import GuardRewrite

MAX_REORDER_RUNS = 40       # whole replays tried in search of an order
REORDER_WINDOW = 256        # how far ahead (in completion order) a call may be moved from


def replay(calls, *, start_maps=None, system_options=None, faults="first-write",
           rewrite=None):
    """Replay `calls` (strace.parse()), choosing the order of overlapping calls that
    reproduces the log where completion order does not. `rewrite`: None (as recorded),
    or "guard" / "guard_batched" (trace.rewrite). Returns a Result."""
    if system_options is None:
        system_options = {"anon_vma_name": _anon_vma_name(calls)}
    order = list(range(len(calls)))
    settled = -1
    options = dict(start_maps=start_maps, system_options=system_options, faults=faults)
    if rewrite is not None:
        options["strategy"] = rewrite

    def run(order):
        cls = Replayer if rewrite is None else GuardRewrite
        r = cls(calls, order=order, **options)
        r.run()
        return r
    best = run(order)
    runs = 1
    while best.mismatch_positions and runs < MAX_REORDER_RUNS:
        pos = _next_mismatch(best, settled)
        if pos is None:
            break
        fixed = None
        for cand in _candidates(calls, order, pos):
            trial = order[:pos] + [order[cand]] + order[pos:cand] + order[cand + 1:]
            attempt = run(trial)
            runs += 1
            if _first_from(attempt, pos) is None or _first_from(attempt, pos) > pos:
                fixed = (trial, attempt, calls[order[cand]].line, calls[order[pos]].line)
                break
            if runs >= MAX_REORDER_RUNS:
                break
        if fixed is None:
            settled = pos
            continue
        order, best = fixed[0], fixed[1]
        best.result.reordered = best.result.reordered + [(fixed[2], fixed[3])]
        settled = pos
    out = best.result
    return out


def _first_from(replayer, after):
    return next((p for p in replayer.mismatch_positions if p is not None and p >= after), None)


def _next_mismatch(replayer, settled):
    return next((p for p in replayer.mismatch_positions if p is not None and p > settled), None)


def _candidates(calls, order, pos):
    """Positions after `pos` of calls of other threads that had started before the call
    at `pos` completed: the kernel may have run any of them first."""
    here = calls[order[pos]]
    out = []
    for q in range(pos + 1, min(len(order), pos + REORDER_WINDOW)):
        c = calls[order[q]]
        if c.pid != here.pid and c.entry < here.line and c.name in Replayer.HANDLERS:
            out.append(q)
    return out


def _anon_vma_name(calls):
    """Whether the recording kernel had CONFIG_ANON_VMA_NAME: a PR_SET_VMA_ANON_NAME that
    succeeded says yes, one that failed with EINVAL says no (the host's default: yes)."""
    for c in calls:
        if c.name == "prctl" and c.argtext.startswith("PR_SET_VMA,"):
            return c.ret == 0
    return True
