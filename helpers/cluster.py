"""Where a command runs: ``--scheduler``/``--workers`` turned into a ``dask.distributed`` client (or none).

- no ``--scheduler``: ``None``, the command runs in-process as before (nothing to set up);
- ``local``: a :class:`distributed.LocalCluster` of ``--workers`` single-threaded worker processes
  (default: the CPUs this process may use);
- ``tcp://HOST:PORT``: an existing scheduler (``dask scheduler`` + ``dask worker``); the connection is
  given up after ``--connect-timeout`` seconds (default :data:`CONNECT_TIMEOUT_S`) with an error naming
  the address, never a hang (nor when the scheduler has no worker after that time);
- ``slurm``: a :class:`dask_jobqueue.SLURMCluster` whose queue, cores, memory and walltime come from the
  Dask configuration (``jobqueue.slurm`` in ``~/.config/dask/jobqueue.yaml`` or ``DASK_JOBQUEUE__SLURM__*``
  variables), scaled to ``--workers`` jobs (README, "Running on a cluster").

:func:`run_tasks` submits one function over many inputs, shows a progress bar per finished task and
returns every result or the exception of the task that failed, so that one failure never stops the others.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

#: seconds to wait for an existing scheduler before giving up (``--connect-timeout``)
CONNECT_TIMEOUT_S = 10.0
#: times a task is re-run after its worker died (dask's ``allowed-failures`` counts the deaths)
TASK_RETRIES = 1


def add_scheduler_arguments(parser) -> None:
    """The ``--scheduler``, ``--workers`` and ``--connect-timeout`` options shared by the commands."""
    parser.add_argument(
        "--scheduler",
        default=None,
        help="run the units of work on Dask: 'local' (this machine), 'tcp://HOST:PORT' (an existing "
        "'dask scheduler'), or 'slurm' (dask-jobqueue, configured in ~/.config/dask/jobqueue.yaml); "
        "default: in this process",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes for 'local' (default: the CPUs available) or SLURM jobs for 'slurm' "
        "(default 1)",
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=CONNECT_TIMEOUT_S,
        help=f"seconds to wait for a tcp:// scheduler (default {CONNECT_TIMEOUT_S:g})",
    )


def available_cpus() -> int:
    """CPUs this process may run on (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def check_scheduler(scheduler: str | None, workers: int | None) -> None:
    """Raise ``ValueError`` for a ``--scheduler``/``--workers`` pair that cannot work, before any work."""
    if workers is not None and workers < 1:
        raise ValueError(f"--workers {workers}: give at least 1")
    if scheduler is None:
        if workers is not None:
            raise ValueError("--workers needs --scheduler local or slurm")
        return
    if scheduler in ("local", "slurm"):
        return
    if scheduler.startswith("tcp://"):
        if workers is not None:
            raise ValueError("--workers does not apply to a tcp:// scheduler (start its 'dask worker's)")
        host_port = scheduler[len("tcp://"):]
        if ":" not in host_port or not host_port.rsplit(":", 1)[1].isdigit():
            raise ValueError(f"--scheduler {scheduler!r}: give tcp://HOST:PORT, e.g. tcp://127.0.0.1:8786")
        return
    raise ValueError(f"--scheduler {scheduler!r}: give 'local', 'slurm' or tcp://HOST:PORT")


def make_slurm_cluster(**overrides):
    """A :class:`dask_jobqueue.SLURMCluster` from the Dask configuration ``jobqueue.slurm`` (no job yet).

    ``overrides`` are passed to the constructor (tests; the commands use the configuration only).
    Raises ``ValueError`` naming the configuration keys when cores or memory are not configured.
    """
    import dask
    from dask_jobqueue import SLURMCluster

    config = dask.config.get("jobqueue.slurm", default={}) or {}
    missing = [k for k in ("cores", "memory") if overrides.get(k, config.get(k)) is None]
    if missing:
        raise ValueError(
            f"--scheduler slurm: jobqueue.slurm.{'/'.join(missing)} not configured; set them in "
            "~/.config/dask/jobqueue.yaml (see the README, 'Running on a cluster') or as "
            "DASK_JOBQUEUE__SLURM__CORES / DASK_JOBQUEUE__SLURM__MEMORY"
        )
    return SLURMCluster(**overrides)


@contextlib.contextmanager
def dask_client(
    scheduler: str | None,
    workers: int | None = None,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
    quiet: bool = False,
) -> Iterator[Any]:
    """Context manager yielding a ``distributed.Client`` for ``scheduler``, or ``None`` for in-process.

    Clusters it started (``local``, ``slurm``) are closed on exit; an existing ``tcp://`` scheduler is only
    disconnected from. The dashboard address is printed unless ``quiet``.
    """
    check_scheduler(scheduler, workers)
    if scheduler is None:
        yield None
        return
    from distributed import Client, LocalCluster

    cluster = None
    if scheduler == "local":
        n = workers or available_cpus()
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0")
    elif scheduler == "slurm":
        cluster = make_slurm_cluster()
        cluster.scale(jobs=workers or 1)
    if cluster is not None:
        client = Client(cluster)
    else:
        try:
            client = Client(scheduler, timeout=f"{connect_timeout_s}s")
        except Exception as err:  # noqa: BLE001 - refused, timed out, or not a Dask scheduler at all
            raise OSError(
                f"--scheduler {scheduler}: no Dask scheduler answered within {connect_timeout_s:g} s "
                f"({type(err).__name__}: {str(err)[:120]}); start one with 'dask scheduler' and "
                f"'dask worker {scheduler}', or check the address"
            ) from None
    if cluster is None:
        try:  # a scheduler without workers would queue the tasks for ever
            client.wait_for_workers(1, timeout=connect_timeout_s)
        except (TimeoutError, OSError):
            client.close()
            raise OSError(
                f"--scheduler {scheduler}: the scheduler has no worker after {connect_timeout_s:g} s; "
                f"start some with 'dask worker {scheduler}'"
            ) from None
    try:
        if not quiet:
            link = client.dashboard_link if client.scheduler_info().get("services", {}).get("dashboard") \
                else "not served (install bokeh)"
            print(f"dask: scheduler {client.scheduler.address}, dashboard {link}", file=sys.stderr)
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


@dataclass
class TaskOutcome:
    """Result of one task: ``value`` when it worked, else ``error`` (the exception it raised)."""

    item: Any
    value: Any = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def run_tasks(
    client,
    function: Callable,
    items: Iterable,
    *args,
    desc: str = "tasks",
    quiet: bool = False,
    names: Callable[[Any], str] = str,
    **kwargs,
) -> list[TaskOutcome]:
    """``function(item, *args, **kwargs)`` for every item, on ``client`` (or in-process when ``None``).

    Outcomes come back in the order of ``items``; a task that raised keeps its exception in
    :attr:`TaskOutcome.error` while the others finish. A task whose worker died is re-run
    (:data:`TASK_RETRIES`), after which it is reported as failed (``distributed.KilledWorker``).
    The progress bar (tqdm, one step per finished task) goes to stderr.
    """
    from tqdm import tqdm

    items = list(items)
    outcomes = [TaskOutcome(item) for item in items]
    bar = tqdm(total=len(items), desc=desc, unit="task", disable=quiet, file=sys.stderr)
    if client is None:
        for outcome in outcomes:
            try:
                outcome.value = function(outcome.item, *args, **kwargs)
            except Exception as err:  # noqa: BLE001 - reported per task, the others go on
                outcome.error = err
            bar.update(1)
        bar.close()
        return outcomes
    from distributed import as_completed

    futures = {}
    for index, item in enumerate(items):
        key = f"{desc}-{names(item)}-{index}".replace(" ", "_")
        future = client.submit(function, item, *args, key=key, retries=TASK_RETRIES, pure=False, **kwargs)
        futures[future] = index
    try:
        for future in as_completed(futures):
            outcome = outcomes[futures[future]]
            try:
                outcome.value = future.result()
            except Exception as err:  # noqa: BLE001 - reported per task, the others go on
                outcome.error = err
            bar.update(1)
    finally:
        bar.close()
        for future in futures:
            future.release()
    return outcomes


def raise_failures(outcomes: list[TaskOutcome], what: str, names: Callable[[Any], str] = str) -> None:
    """Raise one ``RuntimeError`` naming every failed task and its error (nothing when all worked)."""
    failed = [o for o in outcomes if not o.ok]
    if failed:
        lines = "; ".join(f"{names(o.item)}: {type(o.error).__name__}: {o.error}" for o in failed[:10])
        more = f" (and {len(failed) - 10} more)" if len(failed) > 10 else ""
        raise RuntimeError(f"{len(failed)} of {len(outcomes)} {what} failed: {lines}{more}")
