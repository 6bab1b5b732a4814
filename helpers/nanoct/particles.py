"""Nano-CT particles: NMC clusters, per-cluster watershed (tiled when large), defective particles.

:func:`label_clusters` labels the connected NMC clusters; :func:`split_clusters` runs, for each
cluster in its own padded bounding box, hole filling (``fill_voids``), the Euclidean distance transform
(``edt``), h-maxima markers and a marker watershed (scikit-image), the MorphoLibJ "distance transform
watershed" recipe. Working memory follows the largest cluster's bounding box (about 80 B per box
voxel), not the volume; a cluster larger than ``max_box_voxels`` (a dense powder percolates into one
cluster) is processed in overlapping tiles and stitched, so memory is then bounded by the tile.
:func:`classify_defective` flags particles with internal pores (void fraction) or welded, non-convex
aggregates (solidity), the paper's "highly defective" class (17 %).

Memory bound of :func:`segment_particles` on an ``nz × ny × nx`` volume: the input (memory-mapped
or in RAM, 1 B/voxel), the NMC mask (1 B/voxel), cluster labels and particle labels (2 B/voxel each
with ``uint16`` when fewer than 65 535 clusters, else 4 B), plus ~80 B per voxel of the largest
cluster's bounding box, or of one tile with its halo when that box exceeds ``max_box_voxels``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.cluster.hierarchy import DisjointSet  # the two union-finds (saddle merging, tile stitching)

from helpers.nanoct.phases import PhaseFit, grey_histogram, nmc_mask, nmc_threshold_auto
from helpers.stages import stage


def label_dtype(n: int):
    """Smallest unsigned label dtype for labels 1..``n``: ``uint16`` below 65 535, else ``uint32``."""
    return np.uint16 if n < np.iinfo(np.uint16).max else np.uint32


def label_clusters(mask: np.ndarray, connectivity: int = 26, min_voxels: int = 1, slab: int = 64,
                   allocate=None):
    """Connected NMC clusters; clusters smaller than ``min_voxels`` are dropped (noise).

    Labels are written straight into a ``uint16`` array (``scipy.ndimage.label`` with an output
    array; ``uint32`` only when there are more than 65 535 clusters), sizes come from
    ``cc3d.statistics`` and small clusters are removed slab by slab, so the peak is the mask plus
    2 B/voxel (``cc3d.connected_components`` and ``cc3d.dust`` would hold 4–8 B/voxel at once).
    ``allocate(name, shape, dtype)`` gives the label arrays instead (e.g. :func:`scratch_allocator`'s
    memory-mapped files, which keep them out of RAM): scipy labels into ``uint32`` there, narrowed to
    ``uint16`` slab by slab when the clusters fit (same labels).

    Returns
    -------
    labels : uint16 or uint32 array, 0 = background, clusters 1..n
    n : number of clusters kept
    n_removed : number of clusters dropped as smaller than ``min_voxels``
    """
    import cc3d
    from scipy import ndimage as ndi

    if mask.ndim != 3:
        raise ValueError(f"mask must be 3-D, got shape {mask.shape}")
    if connectivity not in (6, 18, 26):
        raise ValueError(f"connectivity must be 6, 18 or 26, got {connectivity}")
    if not mask.any():
        raise ValueError(
            f"the NMC mask of shape {mask.shape} is empty: no voxel is above the threshold; check the "
            "threshold (nmc_threshold_auto) or the volume's grey scale"
        )
    structure = ndi.generate_binary_structure(3, {6: 1, 18: 2, 26: 3}[connectivity])
    if allocate is None:
        try:
            labels = np.empty(mask.shape, np.uint16)
            n = ndi.label(mask, structure=structure, output=labels)
        except RuntimeError:  # more than 65 535 clusters
            labels = np.empty(mask.shape, np.uint32)
            n = ndi.label(mask, structure=structure, output=labels)
    else:
        # straight into uint32: into uint16, scipy redoes the labelling in a temporary whole-volume int32
        # array in RAM (and compares it with a bool copy) as soon as the provisional labels of its first
        # pass exceed 65 535, which large slices reach even with few clusters (480 × 1280² with 1 748
        # clusters: 7.6 B/voxel in RAM). Narrowed to uint16 below, slab by slab, when the clusters fit.
        labels = allocate("clusters_wide", mask.shape, np.uint32)
        n = ndi.label(mask, structure=structure, output=labels)
    n_removed = 0
    remap = None
    if min_voxels > 1:
        sizes = np.asarray(cc3d.statistics(labels)["voxel_counts"])
        small = np.flatnonzero(sizes < min_voxels)
        small = small[small > 0]
        n_removed = int(small.size)
        if n_removed:
            if n == n_removed:
                raise ValueError(
                    f"all {n_removed} NMC clusters are smaller than min_voxels={min_voxels}: lower it or "
                    "check the threshold"
                )
            keep = np.ones(sizes.size, bool)
            keep[small] = False
            keep[0] = False
            remap = np.zeros(sizes.size, np.int64)
            remap[keep] = np.arange(1, keep.sum() + 1)
            n -= n_removed
    if allocate is None or (remap is None and label_dtype(n) == np.uint32):
        if remap is not None:
            remap = remap.astype(labels.dtype)
            for z0 in range(0, labels.shape[0], slab):
                labels[z0 : z0 + slab] = remap[labels[z0 : z0 + slab]]
        return labels, int(n), n_removed
    dtype = label_dtype(n)
    narrow = allocate("clusters", mask.shape, dtype)
    remap = None if remap is None else remap.astype(dtype)
    for z0 in range(0, labels.shape[0], slab):
        block = labels[z0 : z0 + slab]
        narrow[z0 : z0 + slab] = block if remap is None else remap[block]
    release(labels)
    labels = narrow
    return labels, int(n), n_removed


def scratch_allocator(folder):
    """``allocate(name, shape, dtype)``: zero-filled memory-mapped ``.npy`` files in ``folder``.

    Whole-volume masks and label arrays made this way live in the page cache, which the kernel writes
    back and evicts under memory pressure, instead of in the process's own (anonymous) memory: the
    segmentation of a volume larger than RAM then needs only the largest cluster's working memory.
    The files are sparse until written; :func:`release` deletes one when it is no longer needed.
    """
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    def allocate(name, shape, dtype):
        path = folder / f"{name}_{np.dtype(dtype).name}.npy"
        return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=tuple(shape))

    return allocate


def release(array) -> None:
    """Delete the file behind a memory-mapped array of :func:`scratch_allocator` (no-op in RAM).

    The mapping stays valid until the last reference to ``array`` goes (POSIX unlink semantics).
    """
    import os

    path = getattr(array, "filename", None)
    if path is not None and os.path.exists(path):
        os.unlink(path)


def bounding_boxes(labels: np.ndarray) -> list[tuple[slice, slice, slice] | None]:
    """Bounding box of every label 1..max as slices (``None`` if absent), from ``cc3d.statistics``."""
    import cc3d

    stats = cc3d.statistics(np.ascontiguousarray(labels))
    return list(stats["bounding_boxes"][1:])


def padded_box(box, shape, pad):
    """Bounding box ``box`` (tuple of slices) grown by ``pad`` voxels per side, clipped to ``shape``."""
    return tuple(slice(max(s.start - pad, 0), min(s.stop + pad, n)) for s, n in zip(box, shape, strict=True))


# --------------------------------------------------------------------------------------------
# 3. per-cluster watershed
# --------------------------------------------------------------------------------------------
def watershed_crop(mask: np.ndarray, h: float = 1.0, fill: bool = True,
                   rel_dynamic: float = 0.25) -> np.ndarray:
    """Split one binary object (a crop) by an EDT-marker watershed; returns int32 labels 1..k.

    Holes are filled first (``fill_voids``) so internal voids do not split a particle; markers are the
    h-maxima of the Euclidean distance transform (``edt``), dynamic ``h`` in voxels (MorphoLibJ's
    "dynamic"; :func:`helpers.nanoct.hmaxima.h_maxima` gives scikit-image's ``h_maxima`` markers
    without its two argsorts of the box); the watershed floods ``-EDT`` inside the filled mask
    (scikit-image). Then neighbouring regions are merged when the lower of their two EDT peaks stands
    less than ``rel_dynamic`` of its height above their saddle (:func:`merge_by_relative_dynamic`): a
    fixed ``h`` cannot serve both a 6-voxel particle and a 60-voxel elongated crystal whose ridge
    carries several maxima.
    """
    import edt
    import fill_voids
    from scipy import ndimage as ndi
    from skimage.segmentation import watershed

    from helpers.nanoct.hmaxima import h_maxima  # scikit-image's h_maxima, same markers, no sort

    solid = fill_voids.fill(np.ascontiguousarray(mask), in_place=False) if fill else mask
    padded = np.pad(solid, 1)
    dist = edt.edt(padded, black_border=False, parallel=1)[1:-1, 1:-1, 1:-1].astype(np.float32)
    peaks = h_maxima(dist, h) if dist.max() > h else (dist == dist.max())
    peaks &= solid
    markers, n = ndi.label(peaks, structure=np.ones((3, 3, 3), bool))
    if n <= 1:
        return solid.astype(np.int32)
    labels = watershed(-dist, markers, mask=solid).astype(np.int32)
    if rel_dynamic > 0:
        labels = merge_by_relative_dynamic(labels, dist, rel_dynamic)
    return labels


def merge_by_relative_dynamic(labels: np.ndarray, dist: np.ndarray, rel_dynamic: float) -> np.ndarray:
    """Merge watershed regions whose separating saddle is shallow relative to their peaks.

    For each pair of face-adjacent regions, the saddle is the highest ``min(dist)`` over the voxel
    pairs across their common boundary; the pair is merged (highest saddles first, union-find) when
    ``min(peak_a, peak_b) − saddle < rel_dynamic · min(peak_a, peak_b)``. Two balls of radius r touching
    through a neck of radius ρ keep apart while ρ < (1 − rel_dynamic)·r. Returns labels 1..k (int32).
    """
    from scipy import ndimage as ndi

    n = int(labels.max())
    if n <= 1:
        return labels
    peak = np.zeros(n + 1)
    peak[1:] = ndi.maximum(dist, labels, np.arange(1, n + 1))
    codes, saddles = [], []
    for axis in range(3):
        first = [slice(None)] * 3
        second = [slice(None)] * 3
        first[axis], second[axis] = slice(None, -1), slice(1, None)
        a, b = labels[tuple(first)], labels[tuple(second)]
        across = (a != b) & (a > 0) & (b > 0)
        if not across.any():
            continue
        lo, hi = np.minimum(a[across], b[across]).astype(np.int64), np.maximum(a[across], b[across])
        codes.append(lo * (n + 1) + hi)
        saddles.append(np.minimum(dist[tuple(first)][across], dist[tuple(second)][across]))
    if not codes:
        return labels
    codes, saddles = np.concatenate(codes), np.concatenate(saddles)
    order = np.argsort(codes, kind="stable")
    codes, saddles = codes[order], saddles[order]
    pair, start = np.unique(codes, return_index=True)
    saddle = np.maximum.reduceat(saddles, start)
    groups = DisjointSet(range(n + 1))
    top = np.arange(n + 1)  # top[root]: the group's highest-peak region, which names the group
    for code, value in sorted(zip(pair.tolist(), saddle.tolist(), strict=True), key=lambda cv: -cv[1]):
        x, y = divmod(code, n + 1)
        if groups.connected(x, y):
            continue
        rx, ry = top[groups[x]], top[groups[y]]
        low = min(peak[rx], peak[ry])  # peaks of the merged groups: a group's peak is its maximum
        if low - value < rel_dynamic * low:
            groups.merge(x, y)
            top[groups[x]] = rx if peak[rx] >= peak[ry] else ry
    roots = np.array([top[groups[i]] for i in range(n + 1)])
    _, compact = np.unique(roots, return_inverse=True)  # root 0 (background) stays 0
    return compact.astype(np.int32)[labels]


@dataclass
class Segmentation:
    """Result of :func:`segment_particles`.

    Attributes
    ----------
    labels : particle labels (0 = background), holes filled (a particle's voids belong to it)
    n_particles, n_clusters, n_removed_small : counts
    threshold : NMC grey threshold used; ``phase_fit`` the histogram fit (None for a manual threshold)
    boxes : bounding box (slices) of each particle 1..n
    touches_border : (n,) bool, particle touches the volume border (measured but flagged)
    cluster_of : (n,) int, the cluster each particle came from
    largest_box_voxels : voxels of the largest cluster bounding box (sets the working memory)
    denoised : the denoised uint8 volume the fit and threshold saw (None without ``denoise``); use it,
        not the raw volume, for the void analysis
    phases_found : for a fitted threshold, which grey phases the histogram resolved, in words
    predicted_iou : for a fitted threshold, the NMC mask IoU that the fitted mixture predicts
        (:func:`helpers.nanoct.separability.threshold_quality`); NaN for a manual threshold
    """

    labels: np.ndarray
    n_particles: int
    n_clusters: int
    n_removed_small: int
    threshold: float
    phase_fit: PhaseFit | None
    boxes: list
    touches_border: np.ndarray
    cluster_of: np.ndarray
    largest_box_voxels: int
    denoised: np.ndarray | None = field(default=None, repr=False)
    phases_found: str = "manual threshold"
    predicted_iou: float = float("nan")


def split_clusters(cluster_labels: np.ndarray, n_clusters: int, h: float = 1.0, pad: int = 1, out=None,
                   max_box_voxels: int = 200**3, tile_vox: int = 160, halo_vox: int = 24,
                   rel_dynamic: float = 0.25):
    """Watershed every cluster in its padded bounding box; boxes above ``max_box_voxels`` in tiles.

    ``out``: preallocated zeroed integer label array (e.g. a ``numpy.memmap`` on disk); default uint16
    when 4 × n_clusters fits, else uint32. A cluster whose box exceeds ``max_box_voxels`` (a dense,
    percolating powder) is cut into cubic tiles of ``tile_vox`` with ``halo_vox`` of overlap, see
    :func:`split_tiled`. Returns (particle labels, cluster of each particle, voxels of the largest
    box actually processed at once).
    """
    boxes = bounding_boxes(cluster_labels)
    dtype = label_dtype(4 * n_clusters)
    labels = np.zeros(cluster_labels.shape, dtype=dtype) if out is None else out
    cluster_of: list[int] = []
    largest = 0
    next_label = 1
    for k, box in enumerate(boxes, start=1):
        if box is None:
            continue
        crop_box = padded_box(box, cluster_labels.shape, pad)
        box_voxels = int(np.prod([s.stop - s.start for s in crop_box]))
        if box_voxels > max_box_voxels:
            n_parts, work = split_tiled(cluster_labels, k, crop_box, labels, next_label, h,
                                         tile_vox, halo_vox, rel_dynamic)
            largest = max(largest, work)
        else:
            crop = cluster_labels[crop_box] == k
            largest = max(largest, crop.size)
            parts = watershed_crop(crop, h=h, rel_dynamic=rel_dynamic)
            n_parts = int(parts.max())
            if next_label + n_parts > np.iinfo(labels.dtype).max:
                raise ValueError(f"more particles than the label dtype {labels.dtype} holds; "
                                 "pass out= as uint32")
            target = labels[crop_box]
            inside = parts > 0
            target[inside] = (parts[inside] + (next_label - 1)).astype(labels.dtype)
        cluster_of += [k] * n_parts
        next_label += n_parts
    return labels, np.array(cluster_of, dtype=np.int64), largest


def split_tiled(cluster_labels, k, box, labels, first_id, h, tile, halo, rel_dynamic=0.25):
    """Watershed of cluster ``k`` in overlapping tiles of its box, stitched across tile faces.

    Writes particles ``first_id``, ``first_id + 1``, … of the cluster into ``labels`` (in place; also
    used by :func:`helpers.nanoct.segment_tasks.split_clusters_on` for clusters too large for one task).

    Each tile is processed with a halo of ``halo`` voxels (EDT, h-maxima and watershed see the halo);
    only its core is written. A segment of the tile's halo overlapping an already written segment of
    a neighbouring core is merged with it when each is the other's largest overlap (mutual best).
    Exact where the halo exceeds the particles' inscribed radius; working memory ~80 B per voxel of
    (tile + 2·halo)³. Returns (number of particles, voxels of the largest tile with halo).
    """
    starts = [s.start for s in box]
    stops = [s.stop for s in box]
    parts_of = DisjointSet()  # provisional ids first_id + i that are one particle across tile faces
    next_id = first_id
    work = 0
    limit = np.iinfo(labels.dtype).max
    grid = [range(a, b, tile) for a, b in zip(starts, stops, strict=True)]
    for z0 in grid[0]:
        for y0 in grid[1]:
            for x0 in grid[2]:
                core = tuple(slice(c, min(c + tile, e)) for c, e in zip((z0, y0, x0), stops, strict=True))
                ext = tuple(slice(max(c.start - halo, a), min(c.stop + halo, e))
                            for c, a, e in zip(core, starts, stops, strict=True))
                mask = cluster_labels[ext] == k
                inner = tuple(slice(c.start - x.start, c.stop - x.start)
                              for c, x in zip(core, ext, strict=True))
                if not mask[inner].any():
                    continue
                work = max(work, mask.size)
                parts = watershed_crop(mask, h=h, rel_dynamic=rel_dynamic)
                core_parts = parts[inner]
                ids = np.unique(core_parts[core_parts > 0])
                if next_id + ids.size > limit:
                    raise ValueError(f"provisional labels overflow {labels.dtype}; pass out= as uint32")
                lut = np.zeros(int(parts.max()) + 1, np.int64)
                lut[ids] = np.arange(next_id, next_id + ids.size)
                for i in range(next_id - first_id, next_id - first_id + ids.size):
                    parts_of.add(i)
                # stitch: halo voxels of this tile already written by earlier cores of this cluster
                existing = np.asarray(labels[ext])
                in_halo = np.ones(parts.shape, bool)
                in_halo[inner] = False
                sel = in_halo & (parts > 0) & (existing >= first_id) & (lut[parts] > 0)
                if sel.any():
                    a_ids = lut[parts[sel]]
                    b_ids = existing[sel].astype(np.int64)
                    pair, count = np.unique(np.stack([a_ids, b_ids]), axis=1, return_counts=True)
                    best_b = {}
                    best_a = {}
                    for (a, b), c in zip(pair.T, count, strict=True):
                        if c > best_b.get(a, (0, 0))[1]:
                            best_b[a] = (b, c)
                        if c > best_a.get(b, (0, 0))[1]:
                            best_a[b] = (a, c)
                    for a, (b, _) in best_b.items():
                        if best_a[b][0] == a:
                            parts_of.merge(int(a) - first_id, int(b) - first_id)
                target = labels[core]
                inside = core_parts > 0
                target[inside] = lut[core_parts[inside]].astype(labels.dtype)
                next_id += ids.size
    n_ids = next_id - first_id
    roots = np.zeros(n_ids, np.int64)  # each provisional id → the smallest id of its particle
    for members in parts_of.subsets():
        roots[list(members)] = min(members)
    _, compact = np.unique(roots, return_inverse=True)
    final = np.zeros(n_ids + first_id, np.int64)
    final[first_id:] = compact + first_id
    for z in range(starts[0], stops[0], 16):
        block = labels[z : min(z + 16, stops[0]), box[1], box[2]]
        mine = block >= first_id
        block[mine] = final[block[mine]].astype(labels.dtype)
    return int(compact.max()) + 1 if n_ids else 0, work


def segment_particles(
    volume,
    threshold: float | None = None,
    h: float = 1.0,
    min_particle_voxels: int = 8,
    connectivity: int = 26,
    max_box_voxels: int = 200**3,
    tile_vox: int = 160,
    halo_vox: int = 24,
    rel_dynamic: float = 0.25,
    denoise: str | None = None,
    denoise_strength: float | None = None,
    threshold_rule: str | None = None,
    splitter=None,
    min_predicted_iou: float | None = None,
    scratch_dir=None,
) -> Segmentation:
    """Threshold (fitted or given), label NMC clusters, split them per cluster by watershed.

    Parameters
    ----------
    volume : 3-D uint8 array (may be a ``numpy.memmap``)
    threshold : NMC grey threshold; ``None`` fits it (:func:`nmc_threshold_auto`: three phases, or NMC
        and one background when air and glue are not resolved) and refuses (``ValueError``, before any
        labelling) when the fitted mixture predicts an NMC mask IoU under ``min_predicted_iou``
    h : h-maxima dynamic of the distance transform, voxels (larger merges more)
    min_particle_voxels : NMC clusters smaller than this are noise and dropped (count reported)
    connectivity : 6, 18 or 26 for the NMC clusters
    max_box_voxels, tile_vox, halo_vox : clusters with a larger box are split in overlapping tiles
        (:func:`split_clusters`); keep ``halo_vox`` above the largest particle's inscribed radius
    rel_dynamic : merge neighbouring watershed regions whose saddle lies within this fraction of the
        lower peak (:func:`merge_by_relative_dynamic`); 0 disables
    denoise, denoise_strength : filter the volume first with
        :func:`helpers.nanoct.denoise.denoise_volume` (``"tv"``, ``"nlm"`` or ``"median"``), needed at
        the paper's CNR ≈ 2.3 where the three grey peaks merge; costs one more uint8 volume in memory
    threshold_rule : for a fitted threshold, ``"crossing"`` (weighted glue/NMC Gaussians cross, the
        default without denoising) or ``"midpoint"`` (:attr:`PhaseFit.threshold_nmc_midpoint`, the
        default with ``denoise``)
    splitter : replaces :func:`split_clusters` (same arguments and return value), e.g. the Dask-task
        version of :func:`helpers.nanoct.segment_tasks.split_clusters_on`
    min_predicted_iou : refusal limit for a fitted threshold; ``None``:
        :data:`helpers.nanoct.separability.MIN_PREDICTED_IOU`
    scratch_dir : folder for the whole-volume mask, cluster and particle labels as memory-mapped files
        (:func:`scratch_allocator`; the returned ``labels`` is then a ``numpy.memmap`` there, the mask and
        cluster files are deleted when done): the process then holds ~the largest cluster's working
        memory instead of 4–8 B per voxel. Same labels as in RAM. The caller removes the folder.
    """
    from helpers.nanoct.volume_io import validate_volume

    validate_volume(volume, "volume")
    denoised = None
    if denoise is not None:
        from helpers.nanoct.denoise import denoise_volume

        volume = denoised = denoise_volume(volume, method=denoise, strength=denoise_strength)
    if threshold_rule is None:
        threshold_rule = "crossing" if denoise is None else "midpoint"
    if threshold_rule not in ("crossing", "midpoint"):
        raise ValueError(f"threshold_rule must be 'crossing' or 'midpoint', got {threshold_rule!r}")
    fit, phases_found, predicted_iou = None, "manual threshold", float("nan")
    if threshold is None:
        try:
            threshold, fit, phases_found, predicted_iou = fitted_threshold(volume, threshold_rule,
                                                                           min_predicted_iou)
        except ValueError as err:
            if denoise is None:
                raise
            raise ValueError(f"after denoising with {denoise!r}: {err}. At this noise a global threshold "
                             "does not recover particle outlines; a manual threshold (--threshold T) still "
                             "gives the NMC volume fraction") from err
    allocate = None if scratch_dir is None else scratch_allocator(scratch_dir)
    with stage("label clusters"):
        mask = nmc_mask(volume, threshold,
                        out=None if allocate is None else allocate("mask", volume.shape, bool))
        clusters, n_clusters, n_removed = label_clusters(mask, connectivity, min_particle_voxels,
                                                         allocate=allocate)
        release(mask)
        del mask
    with stage("split clusters"):
        out = None if allocate is None else allocate("labels", clusters.shape, label_dtype(4 * n_clusters))
        labels, cluster_of, largest = (splitter or split_clusters)(
            clusters, n_clusters, h=h, max_box_voxels=max_box_voxels, tile_vox=tile_vox, halo_vox=halo_vox,
            rel_dynamic=rel_dynamic, out=out)
        release(clusters)
        del clusters
    with stage("particle boxes"):
        boxes = bounding_boxes(labels)
    border = np.array([touches_border(b, labels.shape) for b in boxes], dtype=bool)
    return Segmentation(
        labels=labels, n_particles=len(boxes), n_clusters=n_clusters, n_removed_small=n_removed,
        threshold=float(threshold), phase_fit=fit, boxes=boxes, touches_border=border,
        cluster_of=cluster_of, largest_box_voxels=int(largest), denoised=denoised,
        phases_found=phases_found, predicted_iou=predicted_iou,
    )


def fitted_threshold(volume, threshold_rule: str = "crossing", min_predicted_iou: float | None = None):
    """NMC threshold from the grey histogram, checked for separability before any labelling.

    Three phases resolved: the glue/NMC ``threshold_rule`` (``"crossing"`` or ``"midpoint"``) of the
    three-phase fit; two (air and glue merged, one absent, or NMC at two grey levels): the same rule
    between the fitted background and NMC (``"crossing"``: their fitted densities equal). Raises
    ``ValueError`` (what the fit found, what to try) when the fitted mixture predicts an NMC mask IoU
    under ``min_predicted_iou`` at that threshold. Returns ``(threshold, PhaseFit or None, phases in
    words, predicted IoU)``.
    """
    from helpers.nanoct.separability import MIN_PREDICTED_IOU, require_separable

    counts = grey_histogram(volume)
    auto = nmc_threshold_auto(counts)
    fit = auto.fit
    if fit is not None:
        threshold = fit.threshold_nmc if threshold_rule == "crossing" else fit.threshold_nmc_midpoint
    elif threshold_rule == "crossing" and np.isfinite(auto.threshold_crossing):
        threshold = auto.threshold_crossing  # background/NMC densities equal: fewest misclassified voxels
    else:
        threshold = auto.threshold
    quality = require_separable(counts, auto.means, auto.sigmas, auto.weights, threshold,
                                MIN_PREDICTED_IOU if min_predicted_iou is None else min_predicted_iou)
    return float(threshold), fit, auto.note, quality.iou


def touches_border(box, shape) -> bool:
    """Whether bounding box ``box`` (tuple of slices) reaches an edge of a volume of ``shape``."""
    if box is None:
        return False
    return any(s.start == 0 or s.stop == n for s, n in zip(box, shape, strict=True))


def watershed_whole_volume(mask: np.ndarray, h: float = 1.0, rel_dynamic: float = 0.25) -> np.ndarray:
    """Reference: the same libraries (fill_voids, edt, h-maxima, watershed) on the whole volume at once.

    Used by the scale benchmark and a test; memory ~80 B per volume voxel (measured 77–88).
    """
    return watershed_crop(np.asarray(mask, bool), h=h, rel_dynamic=rel_dynamic)


# --------------------------------------------------------------------------------------------
# 4. defective particles
# --------------------------------------------------------------------------------------------
_FACE_OFFSETS = np.array(
    [[0.5, 0, 0], [-0.5, 0, 0], [0, 0.5, 0], [0, -0.5, 0], [0, 0, 0.5], [0, 0, -0.5]]
)


def solidity(mask: np.ndarray) -> float:
    """Voxel count / volume of the convex hull of the boundary voxels' face centres (1 = convex).

    Measured on voxelised convex shapes: sphere 0.88 (r = 3 voxels) → 0.94 (r = 8) → 0.97 (r = 20);
    cube 1.00–1.03; two equal spheres just touching ≈ 0.80. Below 4 voxels in any direction the hull
    is degenerate and 1.0 is returned.
    """
    from scipy import ndimage as ndi
    from scipy.spatial import ConvexHull, QhullError

    mask = np.asarray(mask, bool)
    n = int(mask.sum())
    if n == 0:
        raise ValueError("solidity of an empty mask")
    boundary = mask & ~ndi.binary_erosion(mask)
    points = (np.argwhere(boundary)[:, None, :] + _FACE_OFFSETS).reshape(-1, 3)
    try:
        hull = ConvexHull(points)
    except (QhullError, ValueError):
        return 1.0
    return min(float(n / hull.volume), 1.0) if np.ptp(points, axis=0).min() >= 3 else 1.0


def classify_defective(
    void_fraction: np.ndarray,
    solidity_values: np.ndarray,
    void_fraction_min: float = 0.05,
    solidity_min: float = 0.80,
) -> np.ndarray:
    """Defective = internal pores (void fraction ≥ ``void_fraction_min``) or welded/aggregated shape
    (solidity < ``solidity_min``). Returns a bool array; its mean is the paper's "17 %" share.

    Defaults: 5 % voids is "inner porosity" well above noise voids (< 1 % on the phantom); convex
    voxelised shapes keep solidity ≥ 0.88 above 3 voxels radius, two balls just touching give 0.80,
    welded 2–3-grain aggregates of the phantom 0.76–0.91 (so some read as single crystals).
    """
    void_fraction = np.asarray(void_fraction, float)
    solidity_values = np.asarray(solidity_values, float)
    if void_fraction.shape != solidity_values.shape:
        raise ValueError(
            f"void_fraction {void_fraction.shape} and solidity {solidity_values.shape} must match"
        )
    return (void_fraction >= void_fraction_min) | (solidity_values < solidity_min)
