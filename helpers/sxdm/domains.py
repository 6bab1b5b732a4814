"""Orientation (and d) domains in one SXDM scan: separate fused or overlapping crystallites (Fig. S5).

Method — grain reconstruction by neighbour misorientation, as EBSD does it (MTEX ``calcGrains``,
a threshold on the misorientation between neighbouring pixels), with d-spacing as a further feature:

1. every masked scan point gets a feature vector ``(t_x/Δt, t_y/Δt, (d − d̃)/Δd)``, the tilt vector
   in degrees and d in Å, each divided by the *jump* that separates two domains (``tilt_jump_deg``,
   ``d_jump_angstrom``);
   The scan's uniform bend (median neighbour-to-neighbour tilt change) is subtracted first, so that only the
   departures from one bending axis are compared;
2. neighbouring masked points (4-connectivity, :func:`sklearn.feature_extraction.image.grid_to_graph`)
   are joined when their feature distance is below 1;
3. domains are the connected components of that graph (:func:`scipy.sparse.csgraph.connected_components`).

This is exactly single-linkage agglomerative clustering with a spatial connectivity constraint and a
distance threshold (:class:`sklearn.cluster.AgglomerativeClustering` ``linkage="single"``; a test checks
both give the same partition), computed without building the dendrogram. Why single linkage on
neighbours rather than Ward or k-means in feature space: a bent crystal turns *continuously*, so its
total tilt range (0.5–1° for the paper's particles) can exceed the tilt difference between two
domains (≈ 0.1–0.3°); any method that compares cluster means would cut a bent crystal into slices,
while a threshold on neighbour *jumps* follows the smooth bend and stops at the boundary, where the
tilt or d jumps between adjacent scan points. The threshold must lie between the largest
neighbour-to-neighbour change inside a domain (bending × step + noise; 0.02° per 0.1 µm step at
R = 269 µm) and the jump at a boundary (spread over about one footprint).

Points at a boundary see both domains under the beam and carry intermediate values; they can form
tiny components, which are merged into the adjacent domain whose mean features are closest
(``min_points``). Spatially separate crystallites are always separate domains.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components


@dataclass
class DomainStats:
    """Summary of one domain: size, mean d and tilt with their standard errors (counting/noise)."""

    label: int
    n_points: int
    intensity_sum: float
    mean_d_angstrom: float
    sem_d_angstrom: float
    mean_tilt_deg: tuple[float, float]
    sem_tilt_deg: tuple[float, float]
    centroid_um: tuple[float, float]


def neighbour_graph(mask: np.ndarray) -> sparse.coo_matrix:
    """4-connectivity graph between masked scan points, ordered as ``np.flatnonzero(mask)``."""
    from sklearn.feature_extraction.image import grid_to_graph

    mask = np.asarray(mask, bool)
    return grid_to_graph(mask.shape[0], mask.shape[1], mask=mask)


def domain_features(tilt_vector, d_spacing, mask, tilt_jump_deg, d_jump_angstrom):
    """Per masked point: tilt components / ``tilt_jump_deg`` and (d − median d) / ``d_jump_angstrom``,
    (n, 2 or 3); neighbours farther apart than 1 in this space lie across a domain boundary."""
    tilt = np.asarray(tilt_vector, float)[mask]
    feats = [tilt[:, 0] / tilt_jump_deg, tilt[:, 1] / tilt_jump_deg]
    if d_spacing is not None:
        d = np.asarray(d_spacing, float)[mask]
        feats.append((d - np.median(d)) / d_jump_angstrom)
    return np.column_stack(feats)


def _check_inputs(tilt_vector, d_spacing, mask, tilt_jump_deg, d_jump_angstrom):
    tilt_vector = np.asarray(tilt_vector, float)
    mask = np.asarray(mask)
    if tilt_vector.ndim != 3 or tilt_vector.shape[-1] != 2:
        raise ValueError(f"tilt_vector has shape {tilt_vector.shape}; expected (n_slow, n_fast, 2) in deg")
    if mask.dtype != bool or mask.shape != tilt_vector.shape[:2]:
        raise ValueError(
            f"mask must be a boolean map of shape {tilt_vector.shape[:2]}, got {mask.dtype} {mask.shape}"
        )
    if d_spacing is not None and np.shape(d_spacing) != mask.shape:
        raise ValueError(f"d_spacing has shape {np.shape(d_spacing)} but the mask is {mask.shape}")
    if not (tilt_jump_deg > 0) or (d_spacing is not None and not (d_jump_angstrom > 0)):
        raise ValueError(
            f"tilt_jump_deg ({tilt_jump_deg}) and d_jump_angstrom ({d_jump_angstrom}) must be positive"
        )
    finite = np.all(np.isfinite(tilt_vector), axis=-1)
    if d_spacing is not None:
        finite &= np.isfinite(np.asarray(d_spacing, float))
    use = mask & finite
    if not use.any():
        raise ValueError("no masked scan point has a finite tilt (and d): nothing to segment")
    return tilt_vector, use


def bend_gradient(tilt_vector: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The uniform-bend part of a tilt map (deg): the median neighbour-to-neighbour tilt change.

    Along rows and columns, the median over all pairs of adjacent masked points of the tilt
    difference is the bend per scan step; domain boundaries and small crystallites touch few pairs,
    so they do not bias it (a plane fit would: it tilts to absorb a step between two halves).
    Returns ``g_col · (col − c̄) + g_row · (row − r̄)``, shape (n_slow, n_fast, 2).
    """
    tilt = np.asarray(tilt_vector, float)
    pair_col = mask[:, 1:] & mask[:, :-1]
    pair_row = mask[1:, :] & mask[:-1, :]
    if not (pair_col.any() and pair_row.any()):
        return np.zeros_like(tilt)
    g_col = np.median((tilt[:, 1:] - tilt[:, :-1])[pair_col], axis=0)
    g_row = np.median((tilt[1:, :] - tilt[:-1, :])[pair_row], axis=0)
    rows, cols = np.nonzero(mask)
    yy, xx = np.indices(mask.shape)
    return (yy - rows.mean())[..., None] * g_row + (xx - cols.mean())[..., None] * g_col


def segment_domains(
    tilt_vector: np.ndarray,
    d_spacing: np.ndarray | None,
    mask: np.ndarray,
    *,
    tilt_jump_deg: float = 0.05,
    d_jump_angstrom: float = 2e-3,
    min_points: int = 5,
    remove_bend: bool = True,
) -> np.ndarray:
    """Label orientation/d domains of a scan.

    Parameters
    ----------
    tilt_vector : (n_slow, n_fast, 2) tilt vector (deg), e.g. ``SxdmMaps.tilt_xy_deg``
    d_spacing : (n_slow, n_fast) d (Å), or ``None`` to use orientation only
    mask : (n_slow, n_fast) bool, scan points with a measured peak
    tilt_jump_deg, d_jump_angstrom : neighbour change that separates two domains
    min_points : components smaller than this are merged into their closest adjacent domain
        (boundary points); isolated ones (no adjacent domain) are kept
    remove_bend : subtract the scan's uniform tilt gradient (median neighbour change, :func:`bend_gradient`)
        before comparing neighbours, so that a strong bend sampled at a coarse step (step/R above
        the jump) is not cut into slices; a boundary jump is unchanged by it

    Returns
    -------
    labels : (n_slow, n_fast) int, 0 outside the mask, domains numbered 1, 2, … by decreasing size
    """
    tilt_vector, use = _check_inputs(tilt_vector, d_spacing, mask, tilt_jump_deg, d_jump_angstrom)
    if remove_bend:
        tilt_vector = tilt_vector - bend_gradient(tilt_vector, use)
    feats = domain_features(tilt_vector, d_spacing, use, tilt_jump_deg, d_jump_angstrom)
    graph = neighbour_graph(use).tocoo()
    off = graph.row != graph.col
    rows, cols = graph.row[off], graph.col[off]
    jump = np.linalg.norm(feats[rows] - feats[cols], axis=1)
    keep = jump < 1.0
    n = feats.shape[0]
    joined = sparse.coo_matrix((np.ones(int(keep.sum())), (rows[keep], cols[keep])), shape=(n, n))
    _, comp = connected_components(joined, directed=False)
    comp = _merge_small(comp, feats, rows, cols, min_points)
    # renumber by decreasing size, 1-based
    uniq, counts = np.unique(comp, return_counts=True)
    order = uniq[np.argsort(-counts, kind="stable")]
    new = np.empty(comp.max() + 1, int)
    new[order] = np.arange(1, order.size + 1)
    labels = np.zeros(use.shape, int)
    labels[use] = new[comp]
    return labels


def _merge_small(comp, feats, rows, cols, min_points):
    """Merge components smaller than ``min_points`` into the adjacent component of closest mean."""
    comp = comp.copy()
    for _ in range(20):
        sizes = np.bincount(comp)
        small = np.flatnonzero((sizes > 0) & (sizes < min_points))
        if small.size == 0:
            break
        means = np.zeros((sizes.size, feats.shape[1]))
        np.add.at(means, comp, feats)
        means /= np.maximum(sizes, 1)[:, None]
        changed = False
        for c in small[np.argsort(sizes[small])]:
            edges = (comp[rows] == c) & (comp[cols] != c)
            neighbours = np.unique(comp[cols[edges]])
            neighbours = neighbours[sizes[neighbours] >= min_points]
            if neighbours.size == 0:
                continue
            best = neighbours[np.argmin(np.linalg.norm(means[neighbours] - means[c], axis=1))]
            comp[comp == c] = best
            changed = True
        if not changed:
            break
    _, comp = np.unique(comp, return_inverse=True)
    return comp


def _sem(values: np.ndarray) -> float:
    """Standard error of the mean, std/√n (NaN for a single value)."""
    n = values.size
    return float(np.std(values, ddof=1) / np.sqrt(n)) if n > 1 else float("nan")


def domain_stats(
    labels: np.ndarray,
    tilt_vector: np.ndarray,
    d_spacing: np.ndarray,
    intensity: np.ndarray,
    x_um,
    y_um,
) -> list[DomainStats]:
    """Per-domain point count, intensity, mean d and mean tilt with standard errors (std/√n)."""
    labels = np.asarray(labels)
    tilt_vector = np.asarray(tilt_vector, float)
    d_spacing = np.asarray(d_spacing, float)
    xx, yy = np.meshgrid(np.asarray(x_um, float), np.asarray(y_um, float))
    if xx.shape != labels.shape:
        raise ValueError(f"axes give a {xx.shape} grid but labels are {labels.shape}")
    out = []
    for lab in range(1, int(labels.max()) + 1):
        sel = labels == lab
        n = int(sel.sum())
        if n == 0:
            continue
        d = d_spacing[sel]
        t = tilt_vector[sel]
        out.append(
            DomainStats(
                label=lab,
                n_points=n,
                intensity_sum=float(np.nansum(np.asarray(intensity, float)[sel])),
                mean_d_angstrom=float(np.mean(d)),
                sem_d_angstrom=_sem(d),
                mean_tilt_deg=(float(np.mean(t[:, 0])), float(np.mean(t[:, 1]))),
                sem_tilt_deg=(_sem(t[:, 0]), _sem(t[:, 1])),
                centroid_um=(float(np.mean(xx[sel])), float(np.mean(yy[sel]))),
            )
        )
    return out


def domain_map(labels: np.ndarray, values: np.ndarray, label: int) -> np.ndarray:
    """``values`` where ``labels == label``, NaN elsewhere (a per-domain map for plotting)."""
    values = np.asarray(values, float)
    sel = np.asarray(labels) == label
    if values.shape[: sel.ndim] != sel.shape:
        raise ValueError(f"values {values.shape} do not match labels {sel.shape}")
    out = np.full(values.shape, np.nan)
    out[sel] = values[sel]
    return out


def match_domains(labels: np.ndarray, truth: np.ndarray) -> dict[int, tuple[int, float]]:
    """For each true domain (label > 0), the recovered label with the largest IoU and that IoU."""
    labels = np.asarray(labels)
    truth = np.asarray(truth)
    if labels.shape != truth.shape:
        raise ValueError(f"labels {labels.shape} and truth {truth.shape} differ in shape")
    out = {}
    for t in np.unique(truth[truth > 0]):
        tsel = truth == t
        cand = np.unique(labels[tsel & (labels > 0)])
        best = (0, 0.0)
        for c in cand:
            csel = labels == c
            iou = float(np.sum(tsel & csel) / np.sum(tsel | csel))
            if iou > best[1]:
                best = (int(c), iou)
        out[int(t)] = best
    return out
