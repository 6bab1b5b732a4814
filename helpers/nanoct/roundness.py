"""3-D Wadell roundness of one particle, following Zhao & Wang (2016), the workbook's own code.

No well-kept library computes it (WORKBOOK §4). The steps:

1. the binary particle is smoothed with a Gaussian (σ = 1 voxel) and meshed at level 0.5
   (``skimage.measure.marching_cubes``), the same surface as the particle table's area;
2. the principal curvatures κ₁ ≥ κ₂ at every mesh vertex come from the implicit surface of the field
   smoothed to σ = 2 voxels: shape operator −P H P / |∇f| from Gaussian derivatives (P the tangent
   projector), averaged as a tensor over the vertices within 0.2 r_ins (at least 2 voxels). Voxel
   staircases give a curvature noise of ~0.003/voxel, i.e. ±10–20 % of 1/r_ins for r_ins = 20–40 voxels;
   averaging the tensor (not its eigenvalues, whose maximum is biased upwards) brings it to a few %;
3. corner vertices are those with κ₁ > (1 + 0.2)/r_ins (Zhao & Wang: curvature larger than that of the
   maximum inscribed sphere; the 20 % margin keeps the residual noise on a sphere or a cylinder side,
   exactly as curved as the inscribed sphere, from making corners);
4. corner vertices are grouped into patches: connected components of the mesh, corners (κ₂ ≥ κ₁/2) and
   rounded edges (κ₂ < κ₁/2) apart, each split into pieces about 1.5 × its own radius of curvature across
   (farthest-point seeds), so that an edge yields a row of pieces rather than one patch round the particle;
5. each piece gets a least-squares sphere (algebraic fit refined by ``scipy.optimize.least_squares``);
   along a rounded edge the sphere is fitted in the plane normal to the edge (a least-squares circle of the
   cross-section), because a sphere fitted to a cylinder strip grows with the strip's length; a piece whose
   fitted radius is not below r_ins/(1 + 0.2) is, by the same corner criterion, no corner and is dropped,
   and so is a piece over which the surface turns by less than ±15° (too flat to define a radius: a
   noise spot of a few voxels on a large sphere would otherwise give any radius);
6. R = (Σ A_i r_i / Σ A_i) / r_ins with A_i the surface area of piece i. Zhao & Wang average corners with
   equal weights; the pieces here are an arbitrary cut of edges, so the area weight makes R independent of
   the cut (the equal-weight value is kept as ``roundness_unweighted``). No corner at all: R = 1.

Measured on voxelised rounded cubes of half-side h = 14.5–38.5 voxels (the paper's particles at 25 nm):
|R − ρ/h| ≤ 0.035 for ρ/h = 0.25–0.75; spheres R = 1; a sharp edge or corner is resolved as a radius of
3–5 voxels, so sharp cubes and cylinders give R = 0.12–0.20 (the resolution floor ≈ 4 voxels / r_ins).

Cost (issue 18): the derivatives' last 1-D pass and the trilinear sampling are applied only to the voxels
that the vertices read, the tensor averaging sums over a cell grid instead of a kd-tree pair list (both
numba, tested against scipy's full filters and cKDTree), the 2×2 tangent eigenproblem is solved in closed
form, and the corner fits call MINPACK through ``leastsq``: 2.4× faster on paper-like particles than the
scipy-only version, R within 1e-8 of it (``benchmarks/RESULTS_morphology_speed.md``).

Lengths are in voxels throughout; the caller converts. Memory: two float32 copies of the padded crop at a
time, plus ~200 B per mesh vertex.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np
from scipy import ndimage, optimize, sparse
from scipy.spatial import cKDTree

__all__ = ["RoundnessResult", "fit_sphere", "principal_curvatures", "smoothed_surface", "wadell_roundness"]

SURFACE_SIGMA_VOX = 1.0
CURVATURE_SIGMA_VOX = 2.0
CURVATURE_AVERAGE_FRACTION = 0.2
CORNER_MARGIN = 0.2
EDGE_RATIO = 0.5
MIN_TURN_DEG = 15.0


@dataclass
class RoundnessResult:
    """3-D Wadell roundness and what it was computed from (lengths in voxels)."""

    roundness: float  # corner radii averaged with their surface areas as weights (the workbook's R)
    roundness_unweighted: float  # plain mean over pieces, as Zhao & Wang; depends on how edges are cut
    r_ins_vox: float
    corner_radii_vox: np.ndarray
    corner_areas_vox2: np.ndarray
    corner_centres_vox: np.ndarray  # fitted sphere centres, in the mask's index frame (z, y, x)
    n_corner_vertices: int
    n_vertices: int
    vertices: np.ndarray = field(repr=False)  # smoothed mesh, in the mask's index frame
    faces: np.ndarray = field(repr=False)
    kappa_max: np.ndarray = field(repr=False)
    piece_of_vertex: np.ndarray = field(repr=False)  # −1 where the vertex is not in a corner


def _check_mask(mask) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise ValueError(f"roundness: the particle mask must be 3-D, got shape {mask.shape}")
    mask = mask.astype(bool, copy=False)
    if not mask.any():
        raise ValueError("roundness: the particle mask is empty (no voxel set)")
    return mask


def smoothed_surface(mask, sigma_vox: float = SURFACE_SIGMA_VOX, pad_vox: int = 4):
    """Mesh of the Gaussian-smoothed binary ``mask`` at level 0.5: ``(vertices, faces, field, offset)``.

    ``mask`` is padded with ``pad_vox`` empty voxels first so that the surface closes;
    ``vertices`` are in the padded frame, ``offset`` (= pad) maps them back to the mask's indices.
    """
    from skimage.measure import marching_cubes

    mask = _check_mask(mask)
    padded = np.pad(mask, pad_vox).astype(np.float32)
    smooth = ndimage.gaussian_filter(padded, sigma_vox, mode="constant") if sigma_vox > 0 else padded
    if smooth.max() <= 0.5:
        raise ValueError(
            f"roundness: the particle ({int(mask.sum())} voxels) vanishes after smoothing with "
            f"σ = {sigma_vox} voxel; it is too small to mesh"
        )
    vertices, faces, _, _ = marching_cubes(smooth, level=0.5)
    return vertices, faces, smooth, pad_vox


def principal_curvatures(field_array, points, sigma_vox: float = CURVATURE_SIGMA_VOX,
                         average_radius_vox: float = 0.0, return_normal: bool = False):
    """Principal curvatures κ₁ ≥ κ₂ (1/voxel) and the κ₂ direction of the level set through ``points``.

    ``field_array`` is large inside the body (a smoothed indicator); its Gaussian derivatives at scale
    ``sigma_vox`` are interpolated (trilinear) at ``points`` (N×3, inside the grid: ValueError otherwise)
    and give the shape operator −P H P / |∇f|. With ``average_radius_vox`` > 0 the shape-operator
    *tensors* are averaged over the points within that distance before the eigen-decomposition: this
    removes staircase noise without the upward bias that taking the larger of two noisy eigenvalues has.
    Convex surfaces have κ > 0.
    With ``return_normal`` the unit normals of the smoothed field are returned as a fourth array.

    The eigen-decomposition is the closed form of the 2×2 tensor in a tangent basis (t₁, t₂) of each
    point: P A P has the normal as an exact null vector, so its two other eigenpairs are those of
    [tᵢ·A tⱼ] (the same values as a 3×3 ``eigh`` to rounding, ~50× faster on 10⁵ points).
    """
    f = np.asarray(field_array, dtype=np.float32)
    coords = np.asarray(points, dtype=float).T
    n_points = coords.shape[1]
    grad = np.empty((n_points, 3))
    hess = np.empty((n_points, 3, 3))
    for derivative_order, values in _gaussian_derivatives_at(f, sigma_vox, coords):
        axes = [axis for axis, n in enumerate(derivative_order) for _ in range(n)]
        if len(axes) == 1:
            grad[:, axes[0]] = values
        else:
            hess[:, axes[0], axes[1]] = hess[:, axes[1], axes[0]] = values
    norm = np.linalg.norm(grad, axis=1)
    norm = np.where(norm > 0, norm, np.finfo(float).tiny)
    normal = grad / norm[:, None]
    if average_radius_vox > 0:
        # a marching-cubes mesh has ~2 vertices per voxel² of surface: keep ~50 sources per ball (the
        # tensors are correlated over the σ of the derivatives anyway), so the cost stays ∝ N
        step = max(1, int(2.0 * np.pi * average_radius_vox**2 / 50))
        sources = np.arange(0, n_points, step)
        source_tensors = _projected_shape_operator(hess[sources], normal[sources], norm[sources])
        # the tensors are symmetric: average their 6 distinct entries (upper triangle, symmetrised)
        upper = np.triu_indices(3)
        source_entries = 0.5 * (source_tensors[:, upper[0], upper[1]] + source_tensors[:, upper[1], upper[0]])
        averaged, counts = ball_sums(coords.T, coords.T[sources], source_entries, average_radius_vox)
        has_source = counts > 0
        averaged[has_source] /= counts[has_source, None]
        lonely = np.flatnonzero(~has_source)
        lonely_tensors = _projected_shape_operator(hess[lonely], normal[lonely], norm[lonely])
        averaged[lonely] = lonely_tensors[:, upper[0], upper[1]]
        tensor = np.empty((n_points, 3, 3))
        tensor[:, upper[0], upper[1]] = averaged
        tensor[:, upper[1], upper[0]] = averaged
    else:
        tensor = -hess / norm[:, None, None]  # tᵢ·(−P H P/|∇f|)tⱼ = −tᵢ·H tⱼ/|∇f| as P tᵢ = tᵢ
    kappa_max, kappa_min, direction_min = _tangent_eigen(tensor, normal)
    if return_normal:
        return kappa_max, kappa_min, direction_min, normal
    return kappa_max, kappa_min, direction_min


def ball_sums(points, sources, values, radius: float):
    """Sums of ``values`` (M×K) over the ``sources`` (M×3) within ``radius`` (≤) of each of ``points``
    (N×3), and their counts: ``(sums N×K, counts N)``.

    The same numbers as ``cKDTree(points).sparse_distance_matrix(cKDTree(sources), radius)`` used as a 0/1
    matrix on ``values`` (tests compare), without building the pair list: sources are bucketed in a grid
    of cells of edge ``radius`` and each point visits the 27 cells around its own (numba). The pair
    list (~50 pairs per mesh vertex) made the tree query ~10× slower than this.
    """
    points = np.ascontiguousarray(points, dtype=np.float64)
    sources = np.ascontiguousarray(sources, dtype=np.float64)
    values = np.ascontiguousarray(values, dtype=np.float64)
    sums = np.zeros((len(points), values.shape[1]))
    counts = np.zeros(len(points))
    if len(points) == 0 or len(sources) == 0:
        return sums, counts
    origin = np.minimum(points.min(axis=0), sources.min(axis=0))
    extent = np.maximum(points.max(axis=0), sources.max(axis=0)) - origin
    cell_edge = float(radius)  # any edge ≥ radius works (the ball lies in the 27 cells around a point)
    while np.prod(np.floor(extent / cell_edge) + 1) > 8 * len(sources) + 4096:  # bounds the cell table
        cell_edge *= 1.5
    shape = np.floor(extent / cell_edge).astype(np.int64) + 1
    source_cell = np.minimum(np.floor((sources - origin) / cell_edge).astype(np.int64), shape - 1)
    cell_id = (source_cell[:, 0] * shape[1] + source_cell[:, 1]) * shape[2] + source_cell[:, 2]
    order = np.argsort(cell_id, kind="stable")
    cell_start = np.searchsorted(cell_id[order], np.arange(int(np.prod(shape)) + 1))
    _ball_sums_kernel(points, origin, cell_edge, float(radius), shape, cell_start, sources[order],
                      values[order], sums, counts)
    return sums, counts


@numba.njit(cache=True, nogil=True)
def _ball_sums_kernel(points, origin, cell_edge, radius, shape, cell_start, sources, values,
                      sums, counts):  # pragma: no cover - compiled
    radius2 = radius * radius
    for p in range(points.shape[0]):
        cell = np.empty(3, np.int64)
        for axis in range(3):
            cell[axis] = min(int(np.floor((points[p, axis] - origin[axis]) / cell_edge)), shape[axis] - 1)
        for z in range(max(cell[0] - 1, 0), min(cell[0] + 2, shape[0])):
            for y in range(max(cell[1] - 1, 0), min(cell[1] + 2, shape[1])):
                row = (z * shape[1] + y) * shape[2]  # the ≤ 3 cells along x are one run of sources
                first = cell_start[row + max(cell[2] - 1, 0)]
                last = cell_start[row + min(cell[2] + 2, shape[2])]
                for s in range(first, last):
                    d0 = points[p, 0] - sources[s, 0]
                    d1 = points[p, 1] - sources[s, 1]
                    d2 = points[p, 2] - sources[s, 2]
                    if d0 * d0 + d1 * d1 + d2 * d2 <= radius2:
                        counts[p] += 1.0
                        for k in range(values.shape[1]):
                            sums[p, k] += values[s, k]


def _projected_shape_operator(hess, normal, norm):
    """Shape operators −P H P / |∇f| (N×3×3) with P = 1 − n nᵀ, expanded (no 3×3 matrix products):
    P H P = H − n (H n)ᵀ − (H n) nᵀ + (n·H n) n nᵀ."""
    hn = np.einsum("nij,nj->ni", hess, normal)
    nhn = np.einsum("ni,ni->n", normal, hn)
    php = (hess - normal[:, :, None] * hn[:, None, :] - hn[:, :, None] * normal[:, None, :]
           + nhn[:, None, None] * normal[:, :, None] * normal[:, None, :])
    return -php / norm[:, None, None]


def _cross_rows(a, b):
    """Row-wise cross product of two N×3 arrays (``np.cross`` without its axis handling: 3× faster)."""
    return np.column_stack([a[:, 1] * b[:, 2] - a[:, 2] * b[:, 1], a[:, 2] * b[:, 0] - a[:, 0] * b[:, 2],
                            a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]])


def _tangent_eigen(tensor, normal):
    """Eigenvalues κ₁ ≥ κ₂ and the unit κ₂ direction of P A P (A = ``tensor``, N×3×3) in the tangent plane
    of each unit ``normal``: closed form of the symmetric 2×2 [tᵢ·A tⱼ] in an orthonormal tangent basis."""
    n_points = len(normal)
    rows = np.arange(n_points)
    helper = np.zeros((n_points, 3))
    helper[rows, np.argmin(np.abs(normal), axis=1)] = 1.0  # the axis least along the normal
    t1 = _cross_rows(normal, helper)
    t1 /= np.sqrt(np.einsum("ni,ni->n", t1, t1))[:, None]
    t2 = _cross_rows(normal, t1)
    a_t1 = np.einsum("nij,nj->ni", tensor, t1)
    a_t2 = np.einsum("nij,nj->ni", tensor, t2)
    a11 = np.einsum("ni,ni->n", t1, a_t1)
    a22 = np.einsum("ni,ni->n", t2, a_t2)
    a12 = 0.5 * (np.einsum("ni,ni->n", t1, a_t2) + np.einsum("ni,ni->n", t2, a_t1))
    mean, half_difference = 0.5 * (a11 + a22), 0.5 * (a11 - a22)
    radius = np.hypot(half_difference, a12)
    angle = 0.5 * np.arctan2(a12, half_difference)  # direction of κ₁ from t₁; κ₂ is 90° further
    direction_min = -np.sin(angle)[:, None] * t1 + np.cos(angle)[:, None] * t2
    return mean + radius, mean - radius, direction_min


def _gaussian_derivatives_at(f, sigma_vox, coords):
    """``(order, values)`` for the 3 first and 6 second Gaussian derivatives of ``f``, sampled at ``coords``.

    Each derivative is the separable filter ``gaussian_filter(f, σ, order)`` (1-D passes along z, y, x in
    turn, ``mode="reflect"``) sampled by trilinear interpolation, as ``map_coordinates(order=1)`` of the
    filtered volume would. The z and y passes run on the whole volume (9 passes, shared between orders);
    the last (x) pass and the interpolation are one linear map per point, applied only to the 4 × 16
    voxels of the zy-filtered volume that it reads (:func:`_filter_x_and_sample`), so the 9 x passes over
    the whole volume are never run. Equal to the full filters to float32 rounding (~1e-7 relative).
    """
    wanted = {(1, 0, 0), (0, 1, 0), (0, 0, 1),
              (2, 0, 0), (1, 1, 0), (1, 0, 1), (0, 2, 0), (0, 1, 1), (0, 0, 2)}
    x_weights = [_correlation_weights(sigma_vox, order) for order in range(3)]
    for o0 in range(3):
        along_z = ndimage.gaussian_filter1d(f, sigma_vox, axis=0, order=o0)
        for o1 in range(3 - o0):
            o2_needed = [o2 for o2 in range(3) if (o0, o1, o2) in wanted]
            if not o2_needed:
                continue
            along_zy = ndimage.gaussian_filter1d(along_z, sigma_vox, axis=1, order=o1)
            sampled = _filter_x_and_sample(along_zy, [x_weights[o2] for o2 in o2_needed], coords)
            yield from (((o0, o1, o2), values) for o2, values in zip(o2_needed, sampled, strict=True))
            del along_zy
        del along_z


def _correlation_weights(sigma_vox, order) -> np.ndarray:
    """Weights w[s], s = −r…r, with ``gaussian_filter1d(a, σ, order=order)[i] = Σ_s w[s] a[i + s]`` away
    from the edges: the filter's own response to a unit impulse, reversed (no private scipy kernel)."""
    radius = int(4.0 * float(sigma_vox) + 0.5)  # gaussian_filter1d's truncate = 4
    impulse = np.zeros(2 * radius + 1)
    impulse[radius] = 1.0
    return ndimage.gaussian_filter1d(impulse, sigma_vox, order=order, mode="constant")[::-1].copy()


def _filter_x_and_sample(volume, weights_list, coords):
    """Trilinear samples at ``coords`` (3×N, inside the grid) of ``correlate1d(volume, w, axis=2,
    mode="reflect")`` for each ``w`` of ``weights_list`` (odd length 2r + 1), without filtering the whole
    volume: a list of N-arrays (float64).

    At a point with cell corner (z₀, y₀, x₀) and fractions (f_z, f_y, f_x) the sample is
    Σ_{4 corners (z, y)} w_z w_y Σ_{u=−r}^{r+1} c(u) volume[z, y, x₀ + u] with the composite weights
    c(u) = (1 − f_x) w[u] + f_x w[u − 1]: 4 rows of 2r + 2 voxels read per point (numba; no library
    samples a separable filter at scattered points without filtering the whole volume).
    """
    coords = np.ascontiguousarray(coords, dtype=np.float64)
    upper = np.array(volume.shape, dtype=float)[:, None] - 1.0
    if coords.size and ((coords < 0).any() or (coords > upper).any()):
        raise ValueError("principal_curvatures: points must lie inside the field's grid")
    weights = np.ascontiguousarray(np.stack(weights_list), dtype=np.float64)
    out = np.empty((len(weights_list), coords.shape[1]))
    _filter_x_and_sample_kernel(np.ascontiguousarray(volume), weights, coords, out)
    return list(out)


@numba.njit(cache=True, nogil=True)
def _filter_x_and_sample_kernel(volume, weights, coords, out):  # pragma: no cover - compiled
    n_z, n_y, n_x = volume.shape
    n_weights, length = weights.shape
    radius = (length - 1) // 2
    profile = np.empty(length + 1)
    columns = np.empty(length + 1, np.int64)
    composite = np.empty(length + 1)
    for p in range(coords.shape[1]):
        z0, y0, x0 = int(np.floor(coords[0, p])), int(np.floor(coords[1, p])), int(np.floor(coords[2, p]))
        f_z, f_y, f_x = coords[0, p] - z0, coords[1, p] - y0, coords[2, p] - x0
        for u in range(length + 1):  # x = x₀ − r … x₀ + r + 1, reflected at the edges (ndimage "reflect")
            x = x0 - radius + u
            while x < 0 or x >= n_x:
                x = -x - 1 if x < 0 else 2 * n_x - 1 - x
            columns[u] = x
            profile[u] = 0.0
        for dz in range(2):
            z = min(z0 + dz, n_z - 1)
            w_z = f_z if dz else 1.0 - f_z
            for dy in range(2):
                y = min(y0 + dy, n_y - 1)
                w_zy = w_z * (f_y if dy else 1.0 - f_y)
                for u in range(length + 1):
                    profile[u] += w_zy * volume[z, y, columns[u]]
        for k in range(n_weights):
            composite[0] = (1.0 - f_x) * weights[k, 0]
            for u in range(1, length):
                composite[u] = (1.0 - f_x) * weights[k, u] + f_x * weights[k, u - 1]
            composite[length] = f_x * weights[k, length - 1]
            total = 0.0
            for u in range(length + 1):
                total += composite[u] * profile[u]
            out[k, p] = total


def fit_sphere(points):
    """Least-squares sphere (centre, radius; units of ``points``) of ``points`` (N, 3): the algebraic
    fit refined by geometric least squares (distances to the surface).

    Hand-written: scikit-image's ``CircleModel`` is 2-D only. Works in any dimension: (N, 2) ``points``
    give the least-squares circle.
    """
    design = np.column_stack([2 * points, np.ones(len(points))])
    rhs = np.einsum("ij,ij->i", points, points)
    solution, *_ = np.linalg.lstsq(design, rhs, rcond=None)
    centre = solution[:-1]
    radius = float(np.sqrt(max(solution[-1] + centre @ centre, 1e-12)))

    n_points, dim = points.shape
    jacobian_rows = np.empty((n_points, dim + 1))
    jacobian_rows[:, -1] = -1.0  # d(|p − c| − r)/dr

    def residuals(params):
        return np.linalg.norm(points - params[:-1], axis=1) - params[-1]

    def jacobian(params):  # analytic: d(|p − c| − r)/dc = −(p − c)/|p − c|
        offset = points - params[:-1]
        distance = np.maximum(np.linalg.norm(offset, axis=1), np.finfo(float).tiny)
        np.divide(offset, -distance[:, None], out=jacobian_rows[:, :-1])
        return jacobian_rows

    # MINPACK's Levenberg-Marquardt (lmder) called through ``leastsq`` with the settings that
    # ``least_squares(method="lm")`` passes it (tolerances 1e-8, at most 100 n evaluations, x_scale
    # "jac"), so the same iterations and the same minimum (tests compare), without least_squares'
    # per-call set-up, which cost ~1 ms of the ~3 ms of a fit; the analytic Jacobian replaces 4
    # finite-difference residual calls per step
    start = np.append(centre, radius)
    fitted = optimize.leastsq(residuals, start, Dfun=jacobian, ftol=1e-8, xtol=1e-8, gtol=1e-8,
                              maxfev=100 * len(start), factor=100.0)[0]
    return fitted[:-1], abs(float(fitted[-1]))


def _fit_piece_radius(points, kappa_max, kappa_min, direction_min):
    """Centre and radius of the sphere that fits one corner piece (cross-section circle for edges)."""
    edge_like = np.median(kappa_min / kappa_max) < EDGE_RATIO
    if edge_like:
        orientation = direction_min.T @ direction_min
        axis = np.linalg.eigh(orientation)[1][:, -1]
        basis = np.linalg.svd(np.eye(3) - np.outer(axis, axis))[0][:, :2]
        mean = points.mean(axis=0)
        centre, radius = fit_sphere((points - mean) @ basis)
        return mean + basis @ centre, radius
    return fit_sphere(points)


def _split_patch(points, piece_size):
    """Assign each point of one patch to a piece: farthest-point seeds ``piece_size`` apart, nearest seed."""
    seeds = [0]
    distance = np.linalg.norm(points - points[0], axis=1)
    while distance.max() > piece_size:
        nxt = int(np.argmax(distance))
        seeds.append(nxt)
        distance = np.minimum(distance, np.linalg.norm(points - points[nxt], axis=1))
    return cKDTree(points[seeds]).query(points)[1]


def wadell_roundness(mask, r_ins_vox: float | None = None, *, sigma_vox: float = SURFACE_SIGMA_VOX,
                     curvature_sigma_vox: float = CURVATURE_SIGMA_VOX, corner_margin: float = CORNER_MARGIN,
                     average_fraction: float = CURVATURE_AVERAGE_FRACTION,
                     surface=None, min_piece_vertices: int = 30,
                     min_turn_deg: float = MIN_TURN_DEG) -> RoundnessResult:
    """3-D Wadell roundness R = ⟨r_i⟩/r_ins of a binary particle ``mask`` (Zhao & Wang 2016).

    ⟨r_i⟩ is the area-weighted mean radius of the fitted corner spheres (module docstring, step 6).

    Parameters
    ----------
    mask : 3-D bool array, one particle (a bounding-box crop is enough).
    r_ins_vox : radius of the largest inscribed sphere in voxels; default: the maximum of the Euclidean
        distance transform of the padded mask (the particle table's definition).
    sigma_vox, curvature_sigma_vox : Gaussian σ (voxels) of the meshed field and of the curvature field.
    corner_margin : corners are vertices with κ₁ > (1 + corner_margin)/r_ins.
    surface : optional ``smoothed_surface(mask, sigma_vox)`` result, to reuse a mesh already made.
    min_piece_vertices : pieces with fewer vertices are too small for a fit and are dropped.
    min_turn_deg : pieces whose normals turn by less than ± this angle (area-weighted mean normal longer
        than (1 + cos α)/2) are dropped: a radius cannot be fitted to so flat a spot.
    """
    mask = _check_mask(mask)
    if r_ins_vox is None:
        import edt

        r_ins_vox = float(edt.edt(np.pad(mask, 1).astype(np.uint8)).max())
    if not np.isfinite(r_ins_vox) or r_ins_vox <= 0:
        raise ValueError(f"roundness: the inscribed radius must be positive, got {r_ins_vox}")
    vertices, faces, smooth, pad = surface if surface is not None else smoothed_surface(mask, sigma_vox)
    # curvature at a coarser scale than the mesh: staircase noise of the voxel surface is ~0.003/voxel,
    # so the shape operator is averaged over a patch that grows with the particle (noise ∝ 1/r_ins)
    extra_sigma = float(np.sqrt(max(curvature_sigma_vox**2 - sigma_vox**2, 0.25)))
    kappa_max, kappa_min, direction_min, normal = principal_curvatures(
        smooth, vertices, extra_sigma, max(2.0, average_fraction * r_ins_vox), return_normal=True)
    corner = kappa_max > (1.0 + corner_margin) / r_ins_vox
    piece_of_vertex = np.full(len(vertices), -1)
    radii: list[float] = []
    areas: list[float] = []
    centres: list[np.ndarray] = []
    if corner.any():
        edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
        # corners (κ₂ ≈ κ₁) and rounded edges (κ₂ ≪ κ₁) form separate patches
        edge_like = kappa_min < EDGE_RATIO * kappa_max
        same_kind = edge_like[edges[:, 0]] == edge_like[edges[:, 1]]
        edges = edges[corner[edges[:, 0]] & corner[edges[:, 1]] & same_kind]
        face_normal = 0.5 * np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]],
                                     vertices[faces[:, 2]] - vertices[faces[:, 0]])  # length = area
        vertex_area = np.bincount(faces.ravel(), np.repeat(np.linalg.norm(face_normal, axis=1) / 3.0, 3),
                                  minlength=len(vertices))
        # smooth-field (σ = 2) normals: the σ = 1 mesh's own normals follow voxel terraces
        vertex_normal = normal * vertex_area[:, None]
        # a cap of half-angle α has area-weighted mean normal length (1 + cos α)/2
        max_normal_coherence = (1.0 + np.cos(np.deg2rad(min_turn_deg))) / 2.0
        graph = sparse.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])),
                                  shape=(len(vertices),) * 2)
        _, component = sparse.csgraph.connected_components(graph, directed=False)
        next_piece = 0
        for comp in np.unique(component[corner]):
            members = np.flatnonzero(corner & (component == comp))
            if len(members) < min_piece_vertices:
                continue
            local_radius = float(np.median(1.0 / kappa_max[members]))
            pieces = _split_patch(vertices[members], max(2.0, 1.5 * local_radius))
            for piece in np.unique(pieces):
                idx = members[pieces == piece]
                if len(idx) < min_piece_vertices:
                    continue
                coherence = np.linalg.norm(vertex_normal[idx].sum(axis=0)) / vertex_area[idx].sum()
                if coherence > max_normal_coherence:
                    # the surface turns by less than ±min_turn_deg over the piece: too flat a spot to
                    # define a radius (the fit's error grows as (r/L)²); a noise spot, not a corner
                    continue
                centre, radius = _fit_piece_radius(vertices[idx], kappa_max[idx], kappa_min[idx],
                                                   direction_min[idx])
                if radius * (1.0 + corner_margin) >= r_ins_vox:
                    # the fit, a better curvature estimate than one vertex's, says this is no corner
                    # (a noise spot on a surface as curved as the inscribed sphere, e.g. a cylinder side)
                    continue
                radii.append(radius)
                centres.append(centre - pad)
                areas.append(float(vertex_area[idx].sum()))
                piece_of_vertex[idx] = next_piece
                next_piece += 1
    corner_radii, corner_areas = np.asarray(radii), np.asarray(areas)
    if corner_radii.size == 0:
        roundness = unweighted = 1.0
    else:
        roundness = min(1.0, float(np.average(corner_radii, weights=corner_areas)) / r_ins_vox)
        unweighted = min(1.0, float(corner_radii.mean()) / r_ins_vox)
    return RoundnessResult(roundness, unweighted, float(r_ins_vox), corner_radii, corner_areas,
                           np.asarray(centres).reshape(-1, 3), int(corner.sum()), len(vertices),
                           vertices - pad, faces, kappa_max, piece_of_vertex)
