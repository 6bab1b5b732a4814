"""``helpers.cluster``: the SLURM configuration path (job script, nothing submitted) and bad addresses."""

import re
import time
from pathlib import Path

import pytest
import yaml

from helpers import cluster

ROOT = Path(__file__).resolve().parents[1]


def _readme_jobqueue_yaml() -> dict:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```yaml\n(jobqueue:.*?)```", text, re.S)
    assert block, "README.md lost its jobqueue.yaml example"
    return yaml.safe_load(block.group(1))


def test_slurm_cluster_job_script_follows_the_readme_jobqueue_yaml():
    import dask

    config = _readme_jobqueue_yaml()
    with dask.config.set(config):
        # the scheduler must not bind a fixed dashboard port on a shared test machine
        with dask.config.set({"jobqueue.slurm.scheduler-options": {"dashboard_address": ":0"}}):
            slurm = cluster.make_slurm_cluster()
            try:
                script = slurm.job_script()
            finally:
                slurm.close()
    assert "#SBATCH -p nice" in script
    assert "#SBATCH --cpus-per-task=28" in script
    assert "#SBATCH -t 04:00:00" in script
    # 120 GB = 111.76 GiB; dask-jobqueue books it in whole GiB, rounded down
    assert "#SBATCH --mem=112G" in script or "#SBATCH --mem=111G" in script
    assert "--nworkers 4" in script and "--nthreads 7" in script
    assert "source /path/to/venv/bin/activate" in script
    assert "sbatch" not in script  # built, not submitted


def test_slurm_without_cores_or_memory_says_which_keys_to_set():
    import dask

    with dask.config.set({"jobqueue.slurm.cores": None, "jobqueue.slurm.memory": None}):
        with pytest.raises(ValueError, match=r"jobqueue\.slurm\.cores/memory not configured"):
            cluster.make_slurm_cluster()


@pytest.mark.parametrize(
    ("scheduler", "workers", "message"),
    [
        ("tcp://127.0.0.1", None, "tcp://HOST:PORT"),
        ("udp://x:1", None, "give 'local', 'slurm'"),
        ("local", 0, "at least 1"),
        (None, 2, "needs --scheduler"),
        ("tcp://127.0.0.1:8786", 2, "does not apply"),
    ],
)
def test_bad_scheduler_options_are_refused_before_any_work(scheduler, workers, message):
    with pytest.raises(ValueError, match=message):
        cluster.check_scheduler(scheduler, workers)


def test_unreachable_scheduler_fails_within_the_stated_timeout():
    import socket

    with socket.socket() as s:  # a port nobody listens on: bind, read the number, close
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    timeout = 2.0
    start = time.perf_counter()
    with pytest.raises(OSError, match=rf"tcp://127.0.0.1:{port}: no Dask scheduler answered within 2 s"):
        with cluster.dask_client(f"tcp://127.0.0.1:{port}", connect_timeout_s=timeout, quiet=True):
            pass
    # distributed retries until the timeout, then gives up; 5 s of slack for a loaded machine
    assert time.perf_counter() - start < timeout + 5.0


def test_run_tasks_in_process_keeps_going_after_a_failure():
    outcomes = cluster.run_tasks(None, lambda x: 10 // x, [5, 0, 2], quiet=True)
    assert [o.value for o in outcomes] == [2, None, 5]
    assert isinstance(outcomes[1].error, ZeroDivisionError)
    with pytest.raises(RuntimeError, match=r"1 of 3 scans failed: 0: ZeroDivisionError"):
        cluster.raise_failures(outcomes, "scans")


def test_scheduler_without_workers_fails_within_the_stated_timeout(tmp_path):
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path / "scheduler.log", "w")  # noqa: SIM115 - closed below
    command = [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port",
               str(port), "--no-dashboard"]
    scheduler = subprocess.Popen(command, stdout=log, stderr=log, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 60  # wait (bounded) until the scheduler listens
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        start = time.perf_counter()
        with pytest.raises(OSError, match="has no worker after 2 s"):
            with cluster.dask_client(f"tcp://127.0.0.1:{port}", connect_timeout_s=2.0, quiet=True):
                pass
        assert time.perf_counter() - start < 2.0 + 2.0 + 5.0  # connect + wait, with slack for the load
    finally:
        scheduler.terminate()
        scheduler.wait(timeout=15)
        log.close()
