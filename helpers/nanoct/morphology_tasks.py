"""The morphology table of ``ct-analyse`` as Dask tasks: batches of particles, each read inside its task.

The label volume is written once to a scratch HDF5 file (``OUT.parts/labels.h5``, chunked, uncompressed);
each task gets that path and a batch of ``(label, bounding box)`` pairs, reads each particle's crop inside
the task and measures it with the same code as :func:`helpers.nanoct.morphology.particle_table`, so the
rows are the same numbers (bit for bit on one machine). Batches hold consecutive labels with about the
same number of box voxels (the cost grows with it), four batches per worker; rows come back in label
order. The scratch file is deleted at the end.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from helpers.cluster import raise_failures, run_tasks
from helpers.nanoct import morphology as morph


def measure_batch_task(batch, labels_path: str, shape, voxel_size_um: float, options: dict) -> list[dict]:
    """Rows of the particles in ``batch`` (``(label, box)`` pairs), reading crops from ``labels_path``."""
    import h5py
    import hdf5plugin  # noqa: F401 - compression filters in this (worker) process

    rows = []
    with h5py.File(labels_path, "r") as f:
        labels = f["labels"]
        for lab, box in batch:
            crop = labels[box] == lab
            rows.append(morph._table_row(lab, box, crop, tuple(shape), voxel_size_um, options))
    return rows


def _batches(present, slices, n_batches: int):
    cost = np.array([np.prod([s.stop - s.start for s in slices[lab - 1]]) for lab in present], float)
    edges = np.searchsorted(np.cumsum(cost), np.linspace(0, cost.sum(), n_batches + 1)[1:-1], side="right")
    return [b for b in np.split(np.arange(len(present)), edges) if len(b)]


def particle_table_on(client, labels, voxel_size_um: float, scratch_dir, *, quiet: bool = False,
                      min_d_eq_vox: float = morph.MIN_D_EQ_VOX, sigma_vox: float = morph.SURFACE_SIGMA_VOX,
                      compute_roundness: bool = True) -> pd.DataFrame:
    """:func:`helpers.nanoct.morphology.particle_table` with the particles measured as tasks on ``client``."""
    import h5py

    voxel = morph._check_labels(labels, voxel_size_um)
    slices = ndimage.find_objects(np.asarray(labels))
    present = [lab for lab, sl in enumerate(slices, start=1) if sl is not None]
    if not present:
        raise ValueError("particle_table: the label volume holds no particle (every voxel is 0)")
    scratch = Path(scratch_dir)
    scratch.mkdir(parents=True, exist_ok=True)
    labels_path = scratch / "labels.h5"
    with h5py.File(labels_path, "w") as f:
        f.create_dataset("labels", data=np.asarray(labels), chunks=True)
    n_workers = max(1, len(client.scheduler_info().get("workers", {})))
    batches = [[(present[i], slices[present[i] - 1]) for i in idx]
               for idx in _batches(present, slices, 4 * n_workers)]
    options = {"min_d_eq_vox": min_d_eq_vox, "sigma_vox": sigma_vox, "compute_roundness": compute_roundness}
    try:
        outcomes = run_tasks(client, measure_batch_task, batches, str(labels_path), labels.shape, voxel,
                             options, desc="particles", quiet=quiet,
                             names=lambda b: f"labels {b[0][0]}–{b[-1][0]}")
        raise_failures(outcomes, "particle batches")
    finally:
        labels_path.unlink(missing_ok=True)
        if not any(scratch.iterdir()):
            scratch.rmdir()
    return pd.DataFrame([row for o in outcomes for row in o.value], columns=morph.COLUMNS)
