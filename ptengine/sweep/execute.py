"""Running a sweep's jobs on Dask: an embedded local cluster, or an existing scheduler
(mirrors no kernel file).

Jobs go out in batches (one Dask task runs several cells back to back), so the
scheduler's per-task cost is paid once per batch, not once per cell; batches stay small
enough that every worker gets many (the cluster balances cells of unequal cost) and
that a lost worker costs little work. A task whose worker dies is rerun by the
scheduler on another worker (distributed's `allowed-failures`); one that raises is
retried `RETRIES` times. A batch that still fails becomes rows carrying the error, so
no cell is ever dropped from the table.
"""
import contextlib
import logging
import os
import socket
import time

from .. import __version__
from .kinds import by_kind, host_profile

RETRIES = 2
TASKS_PER_WORKER = 16         # batches per worker, for balance and cheap retries
MIN_BATCH = 8                 # cells per batch at least: a task costs a few ms of messages
MAX_BATCH = 100               # cells per batch at most (progress and loss granularity)
WORKER_WAIT_S = 120           # how long an existing cluster may take to show a worker

# The columns every row gets besides the job's identity and the kind's metrics: their types.
PROVENANCE = {"error": "string", "cell_time_s": "Float64", "worker": "string",
              "ptengine_version": "string", "host_profile": "string"}


def run_job(job):
    """One job -> its row, on a worker; an exception becomes the row's `error`."""
    t0 = time.perf_counter()
    row = dict(job)
    try:
        row.update(by_kind(job["kind"]).run(job))
        row["error"] = None
    except Exception as e:                     # noqa: BLE001 - recorded in the row
        row["error"] = f"{type(e).__name__}: {e}"
    row.update(cell_time_s=time.perf_counter() - t0,
               worker=f"{socket.gethostname()}:{os.getpid()}",
               ptengine_version=__version__, host_profile=host_profile(job))
    return row


def run_batch(jobs):
    """A Dask task: several jobs in a row."""
    return [run_job(job) for job in jobs]


def failed_rows(jobs, error):
    """Rows for jobs whose task failed for good (its workers kept dying, say)."""
    text = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
    return [dict(job, error=f"task failed: {text}", cell_time_s=None, worker=None,
                 ptengine_version=__version__, host_profile=host_profile(job)) for job in jobs]


def batches(jobs, workers):
    size = max(MIN_BATCH, min(MAX_BATCH, -(-len(jobs) // (workers * TASKS_PER_WORKER))))
    return [jobs[i:i + size] for i in range(0, len(jobs), size)]


@contextlib.contextmanager
def local_client():
    """A Client of a local cluster, one single-threaded worker process per core (the
    models hold the GIL: threads would not run them in parallel), stopped on leaving."""
    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=os.cpu_count() or 1, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=logging.ERROR) as cluster, \
            Client(cluster) as client:
        yield client


@contextlib.contextmanager
def connect(scheduler):
    """(client, local) for a Client, a scheduler address, or None: a local cluster started
    here and stopped on leaving."""
    from distributed import Client
    if isinstance(scheduler, Client):
        yield scheduler, False
        return
    if scheduler is not None:
        with Client(scheduler, timeout="30s") as client:
            yield client, False
        return
    with local_client() as client:
        yield client, True


def check_environment(client):
    """Refuse a cluster whose scheduler or workers cannot import this ptengine: the
    scheduler unpickles every task (and so imports ptengine), and a task it cannot
    unpickle would never start. One round trip to each."""
    def imported():          # nested: cloudpickle sends it by value, ptengine or not
        try:
            import ptengine
            return ptengine.__version__
        except Exception as e:                 # noqa: BLE001 - reported to the user
            return f"cannot import ptengine ({type(e).__name__}: {e})"
    found = {"scheduler": client.run_on_scheduler(imported)}
    found.update((f"worker {addr}", v) for addr, v in client.run(imported).items())
    bad = {where: v for where, v in found.items() if v != __version__}
    if bad:
        raise RuntimeError("the cluster does not run this ptengine " + f"({__version__}): "
                           + "; ".join(f"{where}: {v}" for where, v in bad.items())
                           + " (install the same ptengine on the scheduler and every worker)")


def run_jobs(jobs, scheduler=None, progress=False):
    """Rows of `jobs`, in their order, run on the cluster `connect` gives."""
    from distributed import as_completed, wait
    with connect(scheduler) as (client, local):
        try:
            client.wait_for_workers(1, timeout=WORKER_WAIT_S)
        except TimeoutError:
            raise RuntimeError(f"no Dask worker joined {client.scheduler.address} within "
                               f"{WORKER_WAIT_S} s (start one with `dask worker ADDRESS`)"
                               ) from None
        if not local:
            check_environment(client)
        workers = len(client.scheduler_info()["workers"])
        parts = batches(jobs, workers)
        futures = client.map(run_batch, parts, retries=RETRIES, pure=False)
        if progress and local:
            from tqdm import tqdm
            sizes = {f.key: len(p) for f, p in zip(futures, parts)}
            with tqdm(total=len(jobs), unit="cell", desc="sweep", leave=False) as bar:
                for f in as_completed(futures):
                    bar.update(sizes[f.key])
        elif progress:
            from distributed import progress as dask_progress
            dask_progress(futures)
        else:
            wait(futures)
        # One round trip for every finished batch; the others become rows with their error.
        finished = dict(zip((f.key for f in futures if f.status == "finished"),
                            client.gather([f for f in futures if f.status == "finished"])))
        rows = []
        for part, f in zip(parts, futures):
            rows.extend(finished[f.key] if f.key in finished else failed_rows(part, f.exception()))
        return rows
