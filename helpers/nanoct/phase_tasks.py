"""The phase pass of ``ct-reconstruct`` as Dask tasks: one range of projections per task, one file each.

Each task gets the input path and a projection range ``i:j`` (a whole number of ``--batch`` batches, at
least 64 projections, so the flats and darks each task reads and averages are a small share of its
reading), opens the scan inside the task (``hdf5plugin`` imported there) and runs, batch by batch, the
same flat/dark correction and retrieval as the in-process pass
(:func:`helpers.nanoct.cli_reconstruct._phase_pass`)
into ``OUT.phase/proj_I_J.h5`` (temporary name, renamed when complete). One writer (this process)
copies the finished ranges, in order, into ``/projections_retrieved`` and advances its ``done`` counter,
deleting each file after; a killed run resumes from the counter and joins range files already complete.

Memory per task: one batch, as in-process (4 B · batch · rows · cols · (n_distances + 3) + the FFT's).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from helpers.cluster import raise_failures, run_tasks
from helpers.nanoct.part_files import is_finished, part_writer

MIN_PROJECTIONS_PER_TASK = 64


def part_dir(out) -> Path:
    """Folder of the per-range files of output ``out``: ``OUT.phase`` beside it."""
    out = Path(out)
    return out.with_name(out.name + ".phase")


def part_file(out, i: int, j: int) -> Path:
    return part_dir(out) / f"proj_{i:06d}_{j:06d}.h5"


def retrieve_range_task(rng: tuple[int, int], out: str, settings: dict) -> str:
    """Retrieve projections ``rng`` of ``settings['input']`` into their own file; returns its path."""
    import hdf5plugin  # noqa: F401 - compression filters in this (worker) process

    from helpers.nanoct import io, phase
    from helpers.nanoct.cli_reconstruct import open_scans

    s = SimpleNamespace(**settings)
    scans = open_scans(SimpleNamespace(**s.args))  # the command's own options, as in-process
    flats = [sc.flat_mean() for sc in scans]
    darks = [sc.dark_mean() for sc in scans]
    shifts = [tuple(v) for v in s.shifts] if s.shifts is not None else None
    i0, j0 = rng
    _, n_rows, n_cols = scans[0].shape
    target = part_file(out, i0, j0)
    with part_writer(target, f"projections {i0}:{j0}", s.run_tag) as g:
        ds = g.create_dataset("projections", (j0 - i0, n_rows, n_cols), "f4")
        for i in range(i0, j0, s.batch):
            j = min(i + s.batch, j0)
            trans = [io.flat_dark_correct(sc.read_frames(i, j), fl, dk)
                     for sc, fl, dk in zip(scans, flats, darks, strict=True)]
            if s.phase == "paganin":
                res = phase.paganin(trans[0], s.delta_beta, s.energy, s.distances[0], s.pixel)
            elif s.phase == "ctf":
                res = phase.ctf_multi(trans, s.delta_beta, s.energy, s.distances, s.pixel, shifts_px=shifts)
            else:
                res = -np.log(np.clip(trans[0], 1e-6, None))
            ds[i - i0 : j - i0] = res
    return str(target)


def phase_pass(f, args, distances, pixel, energy, shifts, start: int, client, quiet: bool = False):
    """Retrieve projections ``start:`` of ``args.input`` on ``client`` into ``f['projections_retrieved']``.

    ``f`` is the output file, open for writing in this process (the tasks only read the input). Returns
    the ranges computed in this call. A failing range raises ``RuntimeError`` naming it, after every range
    before it was joined.
    """
    out = Path(f.filename)
    ds = f["projections_retrieved"]
    n_proj = ds.shape[0]
    per_task = args.batch * max(1, -(-MIN_PROJECTIONS_PER_TASK // args.batch))
    ranges = [(i, min(i + per_task, n_proj)) for i in range(start, n_proj, per_task)]
    run_tag = json.dumps({"params": json.loads(f.attrs["params"]), "shifts": shifts}, sort_keys=True)
    options = {k: v for k, v in vars(args).items() if not k.startswith("_")}  # picklable options only
    settings = {"args": options, "input": str(args.input), "entries": args.entries, "phase": args.phase,
                "delta_beta": args.delta_beta, "energy": energy, "distances": distances, "pixel": pixel,
                "shifts": shifts, "batch": args.batch, "run_tag": run_tag}
    part_dir(out).mkdir(exist_ok=True)
    compute = [r for r in ranges if not is_finished(part_file(out, *r), run_tag, "projections")]
    outcomes = run_tasks(client, retrieve_range_task, compute, str(out), settings, desc="phase",
                         quiet=quiet, names=lambda r: f"projections {r[0]}:{r[1]}")
    import h5py

    for i, j in ranges:  # in order: `done` counts a finished prefix
        path = part_file(out, i, j)
        if not is_finished(path, run_tag, "projections"):
            break
        with h5py.File(path, "r") as g:
            for a in range(0, j - i, args.batch):  # one batch in memory at a time
                b = min(a + args.batch, j - i)
                ds[i + a : i + b] = g["projections"][a:b]
        ds.attrs["done"] = j
        f.flush()
        path.unlink()
    raise_failures(outcomes, "projection ranges")
    if not any(os.scandir(part_dir(out))):
        part_dir(out).rmdir()
    return compute
