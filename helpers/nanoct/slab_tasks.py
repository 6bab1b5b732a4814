"""The back-projection of ``ct-reconstruct`` as Dask tasks: one z-slab per task, one file per slab.

Each task gets the output file's path and a row range, opens ``/projections_retrieved`` read-only inside
the task (``hdf5plugin`` imported there), runs the same ring removal and reconstruction per slice as the
in-process slab pass (:func:`helpers.nanoct.cli_reconstruct._slab_pass`) and writes
``OUT.slabs/slab_A_B.h5`` under a
temporary name, renamed when complete. Then one writer (this process) copies every finished slab into
``/volume``, marks its rows in ``/slice_done`` and deletes the slab file. So a killed run (client or
worker) resumes without redoing anything: rows already in ``/volume`` are skipped, and slab files that
were renamed (complete) are joined, not recomputed. A slab file records the run's parameters and centre;
one from another run is ignored and redone.

Memory per task: the slab of sinograms (4 B · slab · n_proj · cols, twice with ring removal) plus one
reconstruction's working set (as the in-process pass); the joining writer holds one slab.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from helpers.cluster import raise_failures, run_tasks
from helpers.nanoct.part_files import is_finished, part_writer


def slab_dir(out) -> Path:
    """Folder of the per-slab files of output ``out``: ``OUT.slabs`` beside it."""
    out = Path(out)
    return out.with_name(out.name + ".slabs")


def slab_file(out, a: int, b: int) -> Path:
    """File of detector rows ``a:b``."""
    return slab_dir(out) / f"slab_{a:06d}_{b:06d}.h5"


def slab_run_tag(params_json: str, center: float) -> str:
    """The run a slab file belongs to (its ``run`` attribute): the output's parameters and the centre (px).

    A slab file whose tag differs from the current run's is ignored and redone; pass it as ``run_tag``
    to :func:`reconstruct_slab_task`.
    """
    return json.dumps({"params": json.loads(params_json), "center_px": float(center)}, sort_keys=True)


def reconstruct_slab_task(rows: tuple[int, int], out: str, center: float, rings_method: str, method: str,
                          run_tag: str) -> str:
    """Reconstruct detector rows ``rows`` from ``out``'s retrieved projections into the slab's own file.

    Returns the slab file's path. Nothing is left under the final name unless the slab is complete.
    """
    import h5py
    import hdf5plugin  # noqa: F401 - compression filters in this (worker) process

    from helpers.nanoct import recon, rings

    a, b = rows
    with h5py.File(out, "r") as f:
        sinos = f["projections_retrieved"][:, a:b, :]
        angles = f["angles_rad"][()]
    slices = np.stack([
        recon.reconstruct(rings.remove_rings(sinos[:, k, :], rings_method), angles, center, method)
        for k in range(b - a)
    ]).astype(np.float32, copy=False)
    target = slab_file(out, a, b)
    with part_writer(target, f"slab rows {a}:{b}", run_tag) as g:
        g["slices"] = slices
        g.attrs["rows"] = (a, b)
    return str(target)


def plan_slabs(done: np.ndarray, row0: int, row1: int, slab: int) -> list[tuple[int, int]]:
    """Row ranges ``a:b`` (``slab`` rows, the same cut as the in-process pass) with any row not done."""
    return [(a, min(a + slab, row1)) for a in range(row0, row1, slab)
            if not done[a - row0 : min(a + slab, row1) - row0].all()]


def slab_pass(out, center: float, rings_method: str, method: str, slab: int, row0: int, row1: int,
              client, quiet: bool = False) -> list[tuple[int, int]]:
    """Back-project every unfinished slab of ``out`` on ``client`` and join them into ``/volume``.

    ``out`` must be closed by the caller (the tasks read it). Returns the row ranges computed in this
    call (slabs already in ``/volume`` or already in a finished slab file are not recomputed). A failing
    slab raises ``RuntimeError`` naming it, after the others were joined.
    """
    import h5py

    out = Path(out)
    with h5py.File(out, "r") as f:
        done = f["slice_done"][()]
        run_tag = slab_run_tag(f.attrs["params"], center)
    todo = plan_slabs(done, row0, row1, slab)
    slab_dir(out).mkdir(exist_ok=True)
    compute = [r for r in todo if not is_finished(slab_file(out, *r), run_tag, "slices")]
    outcomes = run_tasks(client, reconstruct_slab_task, compute, str(out), center, rings_method, method,
                         run_tag, desc="slabs", quiet=quiet, names=lambda r: f"rows {r[0]}:{r[1]}")
    finished = [r for r in todo if is_finished(slab_file(out, *r), run_tag, "slices")]
    join_slabs(out, finished, row0)
    raise_failures(outcomes, "slabs")
    if not any(os.scandir(slab_dir(out))):
        slab_dir(out).rmdir()
    return compute


def join_slabs(out, ranges, row0: int) -> None:
    """Copy finished slab files into ``out``'s ``/volume`` (single writer), mark them done, delete them."""
    import h5py

    with h5py.File(out, "a") as f:
        vol, done = f["volume"], f["slice_done"]
        for a, b in ranges:
            path = slab_file(out, a, b)
            with h5py.File(path, "r") as g:
                vol[a - row0 : b - row0] = g["slices"][()]
            done[a - row0 : b - row0] = True
            f.flush()  # rows marked done on disk before their slab file goes
            path.unlink()
