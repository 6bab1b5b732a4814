"""Per-particle morphology of a labelled nano-CT volume: size, ellipticity, sphericity, roundness.

Definitions are the workbook's contract (WORKBOOK §4), all rigorous 3-D quantities:

- ``volume_um3``: solid voxel count × voxel volume; ``filled_volume_um3``: the same with the particle's
  internal voids filled (``fill_voids``). Shape is the shape of the *envelope*: every quantity below is
  measured on the filled particle (internal voids are helpers.nanoct.voids' business);
- ``d_eq_um`` = (6 V_filled/π)^(1/3);
- ``surface_um2``: area of the marching-cubes mesh (level 0.5) of the particle smoothed with a Gaussian of
  σ = 1 voxel (within 0.3 % for curved surfaces at r ≥ 20 voxels; the binary mask's mesh is 8.8 % high);
- ``a_um ≥ b_um ≥ c_um``: semi-axes of the inertia ellipsoid, √(5 λ_i) with λ_i the eigenvalues of the
  covariance of the particle's voxels (each voxel taken as a cube, so 1/12 voxel² is added);
  ``e_yx = b/a``, ``e_zx = c/a``, ``e_zy = c/b`` (so e_zx = e_yx · e_zy exactly);
- ``r_ins_um``: maximum of the Euclidean distance transform of the zero-padded particle (no −0.5);
- ``r_cir_um``: radius of the exact minimum enclosing sphere (Welzl) of the vertices of the
  marching-cubes mesh of the *binary* particle (the smoothed mesh shaves ≈ 1.6 voxel off sharp corners);
  those vertices are the centres of the faces between particle and outside voxels
  (:func:`boundary_face_centres`), found without meshing;
- ``sphericity`` S = r_ins / r_cir (the paper's S); ``wadell_sphericity`` ψ = π^(1/3)(6V)^(2/3) / A;
- ``roundness``: 3-D Wadell roundness of :func:`helpers.nanoct.roundness.wadell_roundness`;
- ``touches_border``: the particle's bounding box touches the volume's edge (it is measured as cut);
- ``too_small``: d_eq below ``min_d_eq_vox`` (default 20 voxels = 0.5 µm at 25 nm): one voxel of error in
  r_cir is then ≥ 10 % of S, and corners cannot be told from voxel steps, so S, ψ and R are NaN.

Memory follows the largest particle: each particle is cut out by its bounding box
(``scipy.ndimage.find_objects``), padded by 4 voxels, and measured alone; the label volume itself is only
read (it may be a ``numpy.memmap``). Measured: a 300 × 220 × 160-voxel ellipsoid (d_eq 5.5 µm at 25 nm)
takes 0.63 GB peak RSS for all columns on one core and 4.5 s (in a 307³ box, load 2; 6.8 s before the
issue-18 changes, 22 s before the earlier ones); the paper's largest particle (9.5 µm, ~1.8 × those voxels)
needs about 1.1 GB. Paper-like particles (d_eq 20–110 voxels) take ≈ 0.6–0.9 µs per voxel
(``benchmarks/RESULTS_morphology_speed.md``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import ndimage

from helpers.nanoct.particles import touches_border
from helpers.nanoct.roundness import SURFACE_SIGMA_VOX, smoothed_surface, wadell_roundness

__all__ = ["COLUMNS", "MIN_D_EQ_VOX", "circumball", "circumscribed_radius", "inertia_semi_axes",
           "inscribed_radius", "measure_particle", "particle_table", "weighted_median"]

MIN_D_EQ_VOX = 20.0
PAD_VOX = 4
SUBSET_START = 8  # points of the first Welzl subset (circumscribed_radius)
SUBSET_GROWTH = 2  # farthest outside points added per round
COLUMNS = ["label", "volume_um3", "filled_volume_um3", "d_eq_um", "surface_um2", "a_um", "b_um", "c_um",
           "e_yx", "e_zx", "e_zy",
           "r_ins_um", "r_cir_um", "sphericity", "wadell_sphericity", "roundness", "touches_border",
           "too_small", "n_voxels", "centroid_z_um", "centroid_y_um", "centroid_x_um"]


def inertia_semi_axes(mask) -> tuple[np.ndarray, np.ndarray]:
    """Semi-axes ``a ≥ b ≥ c`` (voxels) of the inertia ellipsoid of ``mask`` and their unit directions.

    a_i = √(5 λ_i) where λ_i are the eigenvalues of the covariance of the voxel coordinates plus 1/12
    (the second moment of one voxel cube), so a solid ellipsoid returns its own semi-axes. Directions are
    the columns of the returned 3×3 matrix, in array axis order (z, y, x).
    """
    cov = _voxel_covariance(np.asarray(mask, dtype=bool))
    eigenvalues, eigenvectors = np.linalg.eigh(cov + np.eye(3) / 12.0)
    order = np.argsort(eigenvalues)[::-1]
    return np.sqrt(5.0 * np.clip(eigenvalues[order], 0.0, None)), eigenvectors[:, order]


def _voxel_covariance(mask: np.ndarray) -> np.ndarray:
    """Covariance (biased, voxels²) of the voxel coordinates of ``mask``, from its 2-D projections.

    Sums of z, y, x, their squares and products come from the counts projected on the (z, y), (z, x) and
    (y, x) planes, so memory is that of the projections, not of an N × 3 coordinate list (24 B per voxel:
    300 MB for a 12-million-voxel particle). Equal to ``np.cov(np.argwhere(mask), bias=True)`` to
    rounding (float64 sums of exact integer counts).
    """
    n = float(np.count_nonzero(mask))
    if n <= 1:
        return np.zeros((3, 3))
    index = [np.arange(size, dtype=np.float64) for size in mask.shape]
    planes = {(0, 1): mask.sum(axis=2, dtype=np.int64).astype(np.float64),
              (0, 2): mask.sum(axis=1, dtype=np.int64).astype(np.float64),
              (1, 2): mask.sum(axis=0, dtype=np.int64).astype(np.float64)}
    lines = [planes[(0, 1)].sum(axis=1), planes[(0, 1)].sum(axis=0), planes[(0, 2)].sum(axis=0)]
    mean = np.array([line @ ix for line, ix in zip(lines, index, strict=True)]) / n
    cov = np.empty((3, 3))
    for axis in range(3):
        cov[axis, axis] = lines[axis] @ (index[axis] - mean[axis]) ** 2 / n
    for (i, j), plane in planes.items():
        cov[i, j] = cov[j, i] = (index[i] - mean[i]) @ plane @ (index[j] - mean[j]) / n
    return cov


def _voxel_mean(mask: np.ndarray) -> np.ndarray:
    """Mean voxel coordinates (z, y, x) of ``mask`` from its 1-D projections: the same numbers as
    ``np.argwhere(mask).mean(axis=0)`` (integer sums, exact in float64) without the N × 3 index list."""
    n = np.count_nonzero(mask)
    if n == 0:
        return np.full(3, np.nan)
    sums = []
    for axis, size in enumerate(mask.shape):
        line = mask.sum(axis=tuple(a for a in range(3) if a != axis), dtype=np.int64)
        sums.append(np.arange(size) @ line)
    return np.array(sums, dtype=np.float64) / n


def inscribed_radius(mask) -> float:
    """Radius (voxels) of the largest inscribed sphere: maximum of the EDT of the zero-padded mask."""
    import edt

    return float(edt.edt(np.pad(np.asarray(mask, dtype=np.uint8), 1), parallel=1).max())


def _cross(a, b) -> np.ndarray:
    """``np.cross`` of two 3-vectors, the same products and differences in the same order (bit-identical)
    without its axis handling, which dominated Welzl's many calls on small supports (≈ 40 µs → 2 µs)."""
    a0, a1, a2 = a.tolist()
    b0, b1, b2 = b.tolist()
    return np.array([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0])


def circumball(support):
    """Smallest ball with all 1–4 ``support`` points on its boundary: (centre, radius²), in the points'
    units. Welzl's building block; hand-written (trimesh's minimum_nsphere is not exact, 1–7 % high)."""
    p = np.asarray(support, dtype=float)
    if len(p) == 1:
        return p[0], 0.0
    if len(p) == 2:
        centre = p.mean(axis=0)
        return centre, float(((p[0] - centre) ** 2).sum())
    a, b = p[1] - p[0], p[2] - p[0]
    if len(p) == 3:
        normal = _cross(a, b)
        denominator = 2.0 * float(normal @ normal)
        if denominator < 1e-18:  # collinear: the two farthest points span the ball
            pairs = [(0, 1), (0, 2), (1, 2)]
            i, j = max(pairs, key=lambda ij: ((p[ij[0]] - p[ij[1]]) ** 2).sum())
            return circumball(p[[i, j]])
        offset = _cross((a @ a) * b - (b @ b) * a, normal) / denominator
        return p[0] + offset, float(offset @ offset)
    c = p[3] - p[0]
    b_c, c_a, a_b = _cross(b, c), _cross(c, a), _cross(a, b)
    determinant = float(a @ b_c)
    if abs(determinant) > 1e-12 * math.sqrt(float((a @ a) * (b @ b) * (c @ c))):
        # Cramer's rule for the centre equidistant to all four: 2 (q − p₀)·x = |q − p₀|², q = p₁…p₃
        offset = ((a @ a) * b_c + (b @ b) * c_a + (c @ c) * a_b) / (2.0 * determinant)
        return p[0] + offset, float(offset @ offset)
    rows = p[1:] - p[0]  # coplanar: the minimum-norm least-squares centre
    rhs = 0.5 * np.einsum("ij,ij->i", rows, rows)
    offset = np.linalg.lstsq(rows, rhs, rcond=None)[0]
    return p[0] + offset, float(offset @ offset)


def _welzl(points, support):
    """Welzl's minimum enclosing ball of ``points`` with ``support`` on its boundary (move-to-front free).

    The scan for the first point outside the current ball is vectorised; recursion depth ≤ 4.
    """
    if len(support) == 4 or len(points) == 0:
        return circumball(support) if support else (np.zeros(3), 0.0)
    centre, radius2 = circumball(support) if support else (points[0], 0.0)
    start = 0 if support else 1
    while start < len(points):
        distance2 = ((points[start:] - centre) ** 2).sum(axis=1)
        outside = np.flatnonzero(distance2 > radius2 * (1.0 + 1e-10) + 1e-12)
        if outside.size == 0:
            break
        i = start + int(outside[0])
        centre, radius2 = _welzl(points[:i], support + [points[i]])
        start = i + 1
    return centre, radius2


def circumscribed_radius(points) -> tuple[np.ndarray, float]:
    """Centre and radius of the exact minimum enclosing sphere of ``points`` (N×3).

    Welzl's algorithm (randomised, expected linear time) run on a growing subset: the ball of a random
    sample of 64 points, then of the sample plus the points left outside (the 16 farthest each round),
    until no point lies outside. The ball of a subset that encloses every point is the ball of all of
    them, so the answer is exact (to the 1e-10 relative inclusion tolerance) while the Python recursion
    only sees a few hundred points, not the thousands of a large particle's convex hull. Written here
    because ``trimesh.nsphere.minimum_nsphere`` only tests the furthest-site Voronoi vertices and so
    overestimates when two or three points fix the sphere (1 % on a triangle of points; tests compare).
    """
    points = np.asarray(points, dtype=float)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) == 0:
        raise ValueError(f"circumscribed_radius: points must be an N×3 array, got shape {points.shape}")
    order = np.random.default_rng(0).permutation(len(points))
    subset = points[order[:SUBSET_START]]
    while True:
        centre, radius2 = _welzl(subset, [])
        distance2 = ((points - centre) ** 2).sum(axis=1)
        outside = np.flatnonzero(distance2 > radius2 * (1.0 + 1e-10) + 1e-12)
        if outside.size == 0:
            return np.asarray(centre), float(np.sqrt(radius2))
        farthest = outside[np.argsort(distance2[outside])[-SUBSET_GROWTH:]]
        subset = np.concatenate([points[farthest], subset])  # new points first: they move the ball most


def boundary_face_centres(mask) -> np.ndarray:
    """Centres (voxel units, the mask's index frame) of the faces between set and unset voxels of ``mask``
    (6-neighbours; outside the array counts as unset), N×3.

    These are exactly the vertices of the marching-cubes mesh at level 0.5 of the zero-padded binary mask
    (linear interpolation between 0 and 1 puts each vertex at its edge's midpoint), found without
    meshing: one comparison of neighbouring voxels per axis.
    """
    padded = np.pad(np.asarray(mask, dtype=bool), 1)
    found = []
    for axis in range(3):
        lower = [slice(None)] * 3
        upper = [slice(None)] * 3
        lower[axis], upper[axis] = slice(None, -1), slice(1, None)
        index = np.nonzero(padded[tuple(lower)] != padded[tuple(upper)])
        centre = np.column_stack(index).astype(float) - 1.0
        centre[:, axis] += 0.5
        found.append(centre)
    return np.concatenate(found)


def binary_mesh_vertices(padded_mask):
    """Vertices (voxel units) of the 0.5 iso-surface of a zero-padded binary mask (marching cubes)."""
    from skimage.measure import marching_cubes

    return marching_cubes(padded_mask.astype(np.float32), level=0.5)[0]


def measure_particle(mask, voxel_size_um: float = 1.0, *, min_d_eq_vox: float = MIN_D_EQ_VOX,
                     sigma_vox: float = SURFACE_SIGMA_VOX, compute_roundness: bool = True,
                     fill_internal_voids: bool = True) -> dict:
    """All morphology columns of one particle given as a 3-D boolean ``mask`` (a bounding-box crop).

    Lengths are returned in µm (``voxel_size_um`` per voxel); see the module docstring for definitions.
    ``fill_internal_voids=False`` measures the solid as it is (void surfaces then count as surface).
    ``label``, ``touches_border`` and the centroid are left to :func:`particle_table`.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 3:
        raise ValueError(f"measure_particle: the mask must be 3-D, got shape {mask.shape}")
    n_voxels = int(mask.sum())
    if n_voxels == 0:
        raise ValueError("measure_particle: the particle mask is empty (no voxel set)")
    vs = float(voxel_size_um)
    if fill_internal_voids:
        import fill_voids

        mask = fill_voids.fill(mask, in_place=False)
    volume_vox = float(mask.sum())
    d_eq_vox = (6.0 * volume_vox / math.pi) ** (1.0 / 3.0)
    semi_axes, _ = inertia_semi_axes(mask)
    a, b, c = semi_axes
    r_ins = inscribed_radius(mask)
    too_small = d_eq_vox < min_d_eq_vox
    row = {
        "volume_um3": n_voxels * vs**3, "filled_volume_um3": volume_vox * vs**3, "d_eq_um": d_eq_vox * vs,
        "surface_um2": math.nan,
        "a_um": a * vs, "b_um": b * vs, "c_um": c * vs,
        "e_yx": b / a, "e_zx": c / a, "e_zy": c / b,
        "r_ins_um": r_ins * vs, "r_cir_um": math.nan, "sphericity": math.nan,
        "wadell_sphericity": math.nan, "roundness": math.nan, "too_small": bool(too_small),
        "n_voxels": n_voxels,
    }
    row["r_cir_um"] = circumscribed_radius(boundary_face_centres(mask))[1] * vs
    try:
        surface = smoothed_surface(mask, sigma_vox, PAD_VOX)
    except ValueError:  # vanishes after smoothing: a few voxels only, no surface to speak of
        return row
    from skimage.measure import mesh_surface_area

    area_vox = float(mesh_surface_area(surface[0], surface[1]))
    row["surface_um2"] = area_vox * vs**2
    if too_small:
        return row
    row["sphericity"] = r_ins / (row["r_cir_um"] / vs)
    row["wadell_sphericity"] = math.pi ** (1 / 3) * (6 * volume_vox) ** (2 / 3) / area_vox
    if compute_roundness:
        row["roundness"] = wadell_roundness(mask, r_ins, sigma_vox=sigma_vox, surface=surface).roundness
    return row


def _check_labels(labels, voxel_size_um):
    if not hasattr(labels, "ndim") or labels.ndim != 3:
        shape = getattr(labels, "shape", type(labels).__name__)
        raise ValueError(f"particle_table: labels must be a 3-D label volume, got {shape}")
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"particle_table: labels must be an integer label volume (0 = background), got dtype "
            f"{labels.dtype}; label a binary mask first (cc3d.connected_components or scipy.ndimage.label)"
        )
    try:
        voxel = float(voxel_size_um)
    except (TypeError, ValueError):
        raise ValueError(f"particle_table: voxel_size_um must be a number, got {voxel_size_um!r}") from None
    if not math.isfinite(voxel) or voxel <= 0:
        raise ValueError(f"particle_table: voxel_size_um must be positive and finite, got {voxel_size_um}")
    return voxel


def particle_table(labels, voxel_size_um: float, *, min_d_eq_vox: float = MIN_D_EQ_VOX,
                   sigma_vox: float = SURFACE_SIGMA_VOX, compute_roundness: bool = True,
                   only_labels=None, n_jobs: int = 1) -> pd.DataFrame:
    """One row per particle of an integer ``labels`` volume (0 = background): the columns ``COLUMNS``.

    Parameters
    ----------
    labels : 3-D integer array (may be memory-mapped); each positive value is one particle.
    voxel_size_um : edge of one (isotropic) voxel in µm (25 nm = 0.025 at ID16B).
    min_d_eq_vox : size cut in voxels of equivalent diameter below which S, ψ and R are NaN and
        ``too_small`` is set (default 20 voxels: 0.5 µm at 25 nm).
    sigma_vox : Gaussian σ (voxels) of the smoothed surface used for area and roundness.
    compute_roundness : skip the roundness (the slowest column) when False (NaN).
    only_labels : iterable of labels to measure (default: all present).
    n_jobs : worker processes (``joblib``); particles are independent, so time divides by ~n_jobs.

    Memory: one bounding-box crop at a time per worker (plus a handful of float copies of it); with
    ``n_jobs`` > 1 at most 2 × n_jobs crops are in flight.
    """
    voxel = _check_labels(labels, voxel_size_um)
    if int(labels.min()) < 0:
        raise ValueError("particle_table: labels must be ≥ 0 (0 = background), found negative values")
    slices = ndimage.find_objects(labels)
    present = [lab for lab, sl in enumerate(slices, start=1) if sl is not None]
    if not present:
        raise ValueError("particle_table: the label volume holds no particle (every voxel is 0)")
    if only_labels is not None:
        wanted = {int(x) for x in only_labels}
        missing = sorted(wanted - set(present))
        if missing:
            raise KeyError(f"particle_table: labels {missing[:10]} are not in the volume")
        present = [lab for lab in present if lab in wanted]
    options = {"min_d_eq_vox": min_d_eq_vox, "sigma_vox": sigma_vox, "compute_roundness": compute_roundness}
    tasks = ((lab, slices[lab - 1], np.asarray(labels[slices[lab - 1]]) == lab) for lab in present)
    if n_jobs == 1:
        rows = [_table_row(lab, sl, crop, labels.shape, voxel, options) for lab, sl, crop in tasks]
    else:
        from joblib import Parallel, delayed

        rows = Parallel(n_jobs=n_jobs, pre_dispatch="2*n_jobs")(
            delayed(_table_row)(lab, sl, crop, labels.shape, voxel, options) for lab, sl, crop in tasks)
    return pd.DataFrame(rows, columns=COLUMNS)


def _table_row(lab, sl, crop, shape, voxel, options) -> dict:
    row = {"label": lab}
    row.update(measure_particle(crop, voxel, **options))
    row["touches_border"] = touches_border(sl, shape)
    centroid = _voxel_mean(crop) + [s.start for s in sl]
    row["centroid_z_um"], row["centroid_y_um"], row["centroid_x_um"] = centroid * voxel
    return row


def weighted_median(values, weights) -> float:
    """Median of ``values`` with ``weights``: the value below which half of the total weight lies.

    With weights = particle volumes this is the paper's "median size" (half of the powder *volume* lies
    in smaller particles); with unit weights it is the ordinary count median (midpoint convention for
    an even count of equal weights).
    """
    values = np.asarray(values, dtype=float)
    weights = np.asarray(weights, dtype=float)
    keep = np.isfinite(values) & np.isfinite(weights) & (weights > 0)
    if not keep.any():
        raise ValueError("weighted_median: no finite value with positive weight")
    order = np.argsort(values[keep])
    v, w = values[keep][order], weights[keep][order]
    cumulative = np.cumsum(w) - 0.5 * w
    return float(np.interp(0.5 * w.sum(), cumulative, v))
