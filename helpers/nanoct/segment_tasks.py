"""The segmentation and void steps of ``ct-analyse`` as Dask tasks: clusters and particles, one writer.

**Clusters.** The NMC cluster labels are written once to a scratch HDF5 file (``OUT.parts/clusters.h5``).
Each task gets that path and a batch of ``(cluster, padded box)`` pairs, reads each cluster's crop inside
the task, splits it with :func:`helpers.nanoct.particles.watershed_crop` (the code of
:func:`helpers.nanoct.particles.split_clusters`) and writes the split crops to its own file
(``split_<batch>.h5``, renamed into place when complete). The command's process is the one writer: it
numbers the particles cluster by cluster in the same order as the in-process path and writes them into the
label volume, so the labels are identical. Clusters whose box exceeds ``max_box_voxels`` (a percolating
powder, split in overlapping stitched tiles) stay with the writer: the stitching needs the labels already
written.

**Voids.** The particle labels (and, after ``--denoise``, the denoised grey volume) are written once to
scratch files; each task gets the paths, a batch of ``(label, box)`` pairs, reads each particle's padded
crop and measures it with :func:`helpers.nanoct.voids.analyse_voids` on that crop (the per-particle code
of the whole-volume call, so the rows are the same numbers). Rows come back in label order. With the
significance test (``significance=`` a measured ``VolumeNoise``) the crops are padded by its
``crop_pad`` (every ball mean about the particle lies inside them: the same numbers as in one process),
and the grey is the input volume as read, not a denoised copy.

Batches hold consecutive clusters/particles with about the same number of box voxels (the cost grows
with it), four batches per worker. Scratch files are removed at the end, also after a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from helpers.cluster import raise_failures, run_tasks
from helpers.nanoct.part_files import parts_folder
from helpers.nanoct.particles import (
    bounding_boxes,
    label_dtype,
    padded_box,
    split_tiled,
    touches_border,
    watershed_crop,
)


def _box_voxels(box) -> int:
    return int(np.prod([s.stop - s.start for s in box]))


def _batches(items, cost, n_batches: int) -> list[list]:
    """``items`` cut into ≤ ``n_batches`` runs of consecutive items of about equal total ``cost``."""
    cost = np.asarray(cost, float)
    if not len(items):
        return []
    edges = np.searchsorted(np.cumsum(cost), np.linspace(0, cost.sum(), n_batches + 1)[1:-1], side="right")
    return [[items[i] for i in idx] for idx in np.split(np.arange(len(items)), edges) if len(idx)]


def _cluster_names(item) -> str:
    return f"clusters {item[1][0][0]}–{item[1][-1][0]}"


def _label_names(batch) -> str:
    return f"labels {batch[0][0]}–{batch[-1][0]}"


def _n_workers(client) -> int:
    return max(1, len(client.scheduler_info().get("workers", {}))) if client is not None else 1


# ------------------------------------------------------------------------------------ clusters


def split_batch_task(item, clusters_path: str, h: float, rel_dynamic: float) -> list[tuple[int, int]]:
    """Watershed of each cluster of ``item = (parts file, [(cluster, box), …])``; returns (cluster, n_parts).

    The split crops go to the parts file (dataset ``str(cluster)``), written under a temporary name and
    renamed when complete.
    """
    import h5py
    import hdf5plugin  # noqa: F401 - compression filters in this (worker) process

    parts_path, batch = item
    tmp = f"{parts_path}.tmp{os.getpid()}"
    counts = []
    try:
        with h5py.File(clusters_path, "r") as src, h5py.File(tmp, "w") as dst:
            clusters = src["clusters"]
            for k, box in batch:
                parts = watershed_crop(clusters[box] == k, h=h, rel_dynamic=rel_dynamic)
                dst.create_dataset(str(k), data=parts)
                counts.append((int(k), int(parts.max())))
        os.replace(tmp, parts_path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return counts


def split_clusters_on(client, cluster_labels: np.ndarray, n_clusters: int, scratch_dir, h: float = 1.0,
                      pad: int = 1, max_box_voxels: int = 200**3, tile_vox: int = 160, halo_vox: int = 24,
                      rel_dynamic: float = 0.25, quiet: bool = False, out=None):
    """:func:`helpers.nanoct.particles.split_clusters` with the clusters split as tasks on ``client``.

    Same arguments (``out``: a zeroed label array to fill, e.g. a memory-mapped file) and return value
    (particle labels, cluster of each particle, voxels of the largest box processed at once);
    ``scratch_dir`` holds the scratch files while it runs (created, emptied after).
    """
    import h5py

    cluster_labels = np.asarray(cluster_labels)
    boxes = bounding_boxes(cluster_labels)
    crop_boxes = {k: padded_box(box, cluster_labels.shape, pad)
                  for k, box in enumerate(boxes, start=1) if box is not None}
    small = [(k, b) for k, b in crop_boxes.items() if _box_voxels(b) <= max_box_voxels]
    scratch = Path(scratch_dir)
    scratch.mkdir(parents=True, exist_ok=True)
    clusters_path = scratch / "clusters.h5"
    batches = _batches(small, [_box_voxels(b) for _, b in small], 4 * _n_workers(client))
    items = [(str(scratch / f"split_{i}.h5"), batch) for i, batch in enumerate(batches)]
    try:
        with h5py.File(clusters_path, "w") as f:
            f.create_dataset("clusters", data=cluster_labels, chunks=True)
        outcomes = run_tasks(client, split_batch_task, items, str(clusters_path), h, rel_dynamic,
                             desc="clusters", quiet=quiet, names=_cluster_names)
        raise_failures(outcomes, "cluster batches", names=_cluster_names)
        file_of = {k: path for path, batch in items for k, _ in batch}
        labels = np.zeros(cluster_labels.shape, dtype=label_dtype(4 * n_clusters)) if out is None else out
        cluster_of: list[int] = []
        largest = 0
        next_label = 1
        open_files: dict[str, h5py.File] = {}
        try:
            for k, crop_box in crop_boxes.items():  # the in-process order: cluster by cluster
                if k not in file_of:
                    n_parts, work = split_tiled(cluster_labels, k, crop_box, labels, next_label, h,
                                                 tile_vox, halo_vox, rel_dynamic)
                    largest = max(largest, work)
                else:
                    path = file_of[k]
                    if path not in open_files:
                        for old in open_files.values():  # batches are consecutive: one file open at a time
                            old.close()
                        open_files = {path: h5py.File(path, "r")}
                    parts = open_files[path][str(k)][()]
                    largest = max(largest, parts.size)
                    n_parts = int(parts.max())
                    if next_label + n_parts > np.iinfo(labels.dtype).max:
                        raise ValueError(f"more particles than the label dtype {labels.dtype} holds")
                    target = labels[crop_box]
                    inside = parts > 0
                    target[inside] = (parts[inside] + (next_label - 1)).astype(labels.dtype)
                cluster_of += [k] * n_parts
                next_label += n_parts
        finally:
            for f in open_files.values():
                f.close()
    finally:
        for path, _ in items:
            Path(path).unlink(missing_ok=True)
        clusters_path.unlink(missing_ok=True)
        _remove_if_empty(scratch)
    return labels, np.array(cluster_of, dtype=np.int64), largest


def segment_particles_on(client, volume, parts_dir, quiet: bool = False, **options):
    """:func:`helpers.nanoct.particles.segment_particles` with the per-cluster split on ``client``.

    ``parts_dir`` holds the tasks' scratch files; ``options`` are those of ``segment_particles``
    (``scratch_dir`` there: the memory-mapped whole-volume arrays).
    """
    from helpers.nanoct.particles import segment_particles

    def splitter(clusters, n_clusters, **split_options):
        return split_clusters_on(client, clusters, n_clusters, parts_dir, quiet=quiet, **split_options)

    return segment_particles(volume, splitter=splitter, **options)


class AnalyseTasks:
    """One Dask client for the task steps of ``ct-analyse`` (``--scheduler``), opened at first use.

    A context manager (the client, and a cluster it started, are closed on exit). ``segment`` and
    ``voids`` are :func:`segment_particles_on` and :func:`analyse_voids_on` with their scratch files in
    ``OUT.parts``; ``client`` is also used for the morphology tasks.
    """

    def __init__(self, args):
        import contextlib

        self.args = args
        self._stack = contextlib.ExitStack()
        self._client = None

    @property
    def client(self):
        if self._client is None:
            from helpers.cluster import dask_client

            a = self.args
            self._client = self._stack.enter_context(dask_client(a.scheduler, a.workers, a.connect_timeout))
        return self._client

    def segment(self, volume, out, **options):
        return segment_particles_on(self.client, volume, parts_folder(out), **options)

    def voids(self, out, volume_path, volume_dataset, labels, threshold, voxel_size_um, **options):
        return analyse_voids_on(self.client, volume_path, volume_dataset, labels, threshold, voxel_size_um,
                                parts_folder(out), **options)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._stack.close()
        return False


# ------------------------------------------------------------------------------------ voids


def voids_batch_task(batch, labels_path: str, volume_path: str, volume_dataset: str | None, shape,
                     threshold: float, voxel_size_um: float, options: dict) -> tuple[list[dict], list[dict]]:
    """Particle and void rows of the particles in ``batch`` (``(label, box)`` pairs), read from files."""
    import h5py
    import hdf5plugin  # noqa: F401 - compression filters in this (worker) process

    from helpers.nanoct.voids import analyse_voids
    from helpers.nanoct.volume_io import open_volume

    volume = open_volume(volume_path, volume_dataset)
    rows, void_rows = [], []
    pad = 1  # the crop analyse_voids takes about each box, so that the crop here holds all it reads
    if options.get("significance") is not None:
        from helpers.nanoct.void_significance import crop_pad

        pad = crop_pad(options["significance"])
    try:
        with h5py.File(labels_path, "r") as f:
            labels = f["labels"]
            for lab, box in batch:
                crop_box = padded_box(box, shape, pad)
                own = (labels[crop_box] == lab).astype(np.uint8)
                inner = tuple(slice(b.start - c.start, b.stop - c.start)
                              for b, c in zip(box, crop_box, strict=True))
                grey = np.asarray(volume[crop_box])
                particles, voids = analyse_voids(grey, own, threshold, voxel_size_um, boxes=[inner],
                                                 **options)
                row = particles.drop(columns="volume_um3").to_dict("records")[0]
                row["label"] = lab
                row["touches_border"] = touches_border(box, shape)
                rows.append(row)  # the keys of the in-process row (one-row table: its columns)
                for v in voids.to_dict("records"):
                    v["label"] = lab
                    void_rows.append(v)
    finally:
        close = getattr(volume, "close", None)
        if close is not None:
            close()
    return rows, void_rows


def analyse_voids_on(client, volume_path, volume_dataset, labels: np.ndarray, threshold: float,
                     voxel_size_um: float, scratch_dir, *, volume=None, boxes=None, quiet: bool = False,
                     **options):
    """:func:`helpers.nanoct.voids.analyse_voids` with the particles measured as tasks on ``client``.

    The grey volume is read by the tasks from ``volume_path`` (``volume_dataset``), or, when ``volume``
    (an array, e.g. the denoised volume) is given, from a scratch copy of it. Returns the same
    (particles, voids) tables.
    """
    import h5py
    import pandas as pd

    if voxel_size_um <= 0:
        raise ValueError(f"voxel_size_um must be > 0, got {voxel_size_um}")
    if boxes is None:
        boxes = bounding_boxes(labels)
    present = [(lab, box) for lab, box in enumerate(boxes, start=1) if box is not None]
    scratch = Path(scratch_dir)
    scratch.mkdir(parents=True, exist_ok=True)
    labels_path = scratch / "voids_labels.h5"
    grey_path = scratch / "voids_volume.h5"
    try:
        with h5py.File(labels_path, "w") as f:
            f.create_dataset("labels", data=np.asarray(labels), chunks=True)
        if volume is not None:
            with h5py.File(grey_path, "w") as f:
                f.create_dataset("volume", data=np.asarray(volume), chunks=True)
            volume_path, volume_dataset = grey_path, "volume"
        batches = _batches(present, [_box_voxels(b) for _, b in present], 4 * _n_workers(client))
        outcomes = run_tasks(client, voids_batch_task, batches, str(labels_path), str(volume_path),
                             volume_dataset, tuple(labels.shape), float(threshold), float(voxel_size_um),
                             options, desc="voids", quiet=quiet, names=_label_names)
        raise_failures(outcomes, "particle batches (voids)", names=_label_names)
    finally:
        labels_path.unlink(missing_ok=True)
        grey_path.unlink(missing_ok=True)
        _remove_if_empty(scratch)
    rows = [r for o in outcomes for r in o.value[0]]
    void_rows = [r for o in outcomes for r in o.value[1]]
    particles = pd.DataFrame(rows)
    particles["volume_um3"] = particles["filled_voxels"] * voxel_size_um**3
    voids = pd.DataFrame(void_rows, columns=["label", "void", "volume_um3", "d_um", "d_eq_um", "radial"])
    return particles, voids


def _remove_if_empty(folder: Path) -> None:
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
