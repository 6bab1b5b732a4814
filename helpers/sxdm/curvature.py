"""Radius of curvature of a bent crystal from its SXDM tilt map, and the ensemble descriptor (Fig. S6).

The paper read the two extreme tilt colours by eye, measured the distance between them and divided
(particle 3: 4.3 µm / 0.51° → 483 µm), then fitted a straight line of total curvature against size
over seven particles (R = 269 ± 52 µm). Here every step is a fit:

1. **Per particle** (:func:`particle_curvature`): the tilt vector ``t = (t_x, t_y)`` (deg) of every
   masked scan point is fitted by a plane ``t = t0 + G (p − p̄)`` over the scan position ``p`` (µm).
   For a crystal bent about one in-plane axis ``G`` has rank one; its largest singular value is the
   curvature ``κ`` (deg/µm) and its right singular vector the *gradient direction* (the in-plane
   direction along which the lattice turns; the bending axis is perpendicular to it). The tilt
   component along the left singular vector is then refitted against the coordinate along the
   gradient direction to get ``κ`` with its least-squares standard error. Size ``L`` = extent of the
   mask along the gradient direction (plus one scan step, each point covering one cell); total
   curvature ``Δφ = κ L``; ``R = L / Δφ = 1 / κ`` (κ in rad/µm). A second, model-light estimate of
   Δφ from the medians of the two end deciles along the axis is kept as a cross-check.
2. **Flags** instead of division errors: ``no measurable curvature`` when κ is not 4σ above zero
   (R reported as ``inf`` with a lower bound), ``step-like tilt (two domains?)`` when a single step
   explains the tilt profile much better than a line (non-bending pattern), ``rank-2 tilt gradient``
   when the tilt also turns strongly along the second direction (twist/saddle, not one bending axis).
3. **Ensemble** (:func:`ensemble_fit`): ``Δφ_i = a + L_i / R`` fitted over particles through the
   origin (``a = 0``, the physical model of one common radius) and with a free intercept; R from the
   slope with its delta-method standard error and a percentile bootstrap interval over particles
   (seeded ``rng``).

Uncertainty of κ: the larger of the least-squares error (exact for independent residuals) and a
spatial block bootstrap (tiles of ``block_um``, default 0.4 µm), because real residuals are correlated
over the beam footprint and by smooth mosaicity, which least squares would take as independent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: flag texts (stable strings, tests and notebooks compare against them)
FLAG_FLAT = "no measurable curvature"
FLAG_STEP = "step-like tilt (two domains?)"
FLAG_RANK2 = "rank-2 tilt gradient (twist or saddle, not one bending axis)"

MIN_POINTS = 6


@dataclass
class CurvatureResult:
    """Radius of curvature of one particle from its tilt map.

    Attributes
    ----------
    radius_um, radius_sigma_um : radius of curvature R = L/Δφ and its 1σ (``inf``/``nan`` when flat)
    radius_lower_bound_um : R is larger than this at the significance level (≈ 4σ) (useful when flat)
    curvature_deg_per_um, curvature_sigma_deg_per_um : tilt gradient κ along the gradient direction and
        its 1σ, the larger of the least-squares (``_ols``) and spatial block-bootstrap (``_block``) errors
    total_curvature_deg, total_curvature_sigma_deg : Δφ = κ L from the fitted plane
    total_curvature_ends_deg : Δφ from the medians of the two end deciles along the axis (cross-check)
    size_um : extent of the mask along the gradient direction (µm)
    gradient_direction_deg : in-plane direction (from +x towards +y) along which the tilt changes
    bending_axis_deg : the bending axis, perpendicular to the gradient direction
    tilt_direction_deg : direction in tilt space along which the tilt vector moves
    second_singular_ratio : σ₂/σ₁ of the tilt-gradient matrix (0 for one pure bending axis)
    step_to_line_ratio : residual sum of squares of the best one-step profile / of the line
    residual_rms_deg : rms residual of the plane fit
    n_points : masked, finite scan points used
    flags : list of flag strings (empty when the particle is a clean single-axis bend)
    """

    radius_um: float
    radius_sigma_um: float
    radius_lower_bound_um: float
    curvature_deg_per_um: float
    curvature_sigma_deg_per_um: float
    curvature_sigma_ols_deg_per_um: float
    curvature_sigma_block_deg_per_um: float
    total_curvature_deg: float
    total_curvature_sigma_deg: float
    total_curvature_ends_deg: float
    size_um: float
    gradient_direction_deg: float
    bending_axis_deg: float
    tilt_direction_deg: float
    second_singular_ratio: float
    step_to_line_ratio: float
    residual_rms_deg: float
    n_points: int
    flags: list[str] = field(default_factory=list)

    @property
    def measurable(self) -> bool:
        """True when the curvature is significantly non-zero."""
        return FLAG_FLAT not in self.flags


def tilt_vector_deg(tilt_deg: np.ndarray, tilt_azimuth_deg: np.ndarray) -> np.ndarray:
    """Tilt magnitude and azimuth (deg) → tilt vector ``(..., 2)`` = tilt·(cos az, sin az) in deg.

    For the sub-degree tilts of SXDM this pole-figure projection is linear in the lattice rotation,
    so a uniform bend gives a tilt vector that is linear in position.
    """
    tilt = np.asarray(tilt_deg, dtype=float)
    azimuth = np.deg2rad(np.asarray(tilt_azimuth_deg, dtype=float))
    if tilt.shape != azimuth.shape:
        raise ValueError(f"tilt_deg has shape {tilt.shape} but tilt_azimuth_deg has {azimuth.shape}")
    return np.stack([tilt * np.cos(azimuth), tilt * np.sin(azimuth)], axis=-1)


def _grid_positions(x_um, y_um, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, float]:
    """Scan positions as two (n_slow, n_fast) arrays and the scan step (µm)."""
    x_um = np.asarray(x_um, dtype=float)
    y_um = np.asarray(y_um, dtype=float)
    if x_um.ndim == 1 and y_um.ndim == 1:
        if x_um.size != shape[1] or y_um.size != shape[0]:
            raise ValueError(
                f"x_um has {x_um.size} and y_um {y_um.size} values but the map is {shape} "
                "(n_slow, n_fast): pass x_um of length n_fast and y_um of length n_slow"
            )
        xx, yy = np.meshgrid(x_um, y_um)
    elif x_um.shape == shape and y_um.shape == shape:
        xx, yy = x_um, y_um
    else:
        raise ValueError(f"x_um {x_um.shape} / y_um {y_um.shape} match neither the map {shape} nor its axes")
    steps = np.concatenate([np.abs(np.diff(xx, axis=1)).ravel(), np.abs(np.diff(yy, axis=0)).ravel()])
    steps = steps[np.isfinite(steps) & (steps > 0)]
    step = float(np.median(steps)) if steps.size else 0.0
    return xx, yy, step


def _best_step_rss(profile: np.ndarray) -> float:
    """Residual sum of squares of the best two-level (one step) fit of a sorted 1-D profile."""
    n = profile.size
    csum = np.cumsum(profile)
    csum2 = np.cumsum(profile**2)
    k = np.arange(1, n)  # points left of the step
    left_rss = csum2[:-1] - csum[:-1] ** 2 / k
    right_sum = csum[-1] - csum[:-1]
    right_rss = (csum2[-1] - csum2[:-1]) - right_sum**2 / (n - k)
    # keep at least 10 % on each side so that one outlier at an end is not a "step"
    keep = (k >= max(2, n // 10)) & (n - k >= max(2, n // 10))
    return float(np.min((left_rss + right_rss)[keep])) if np.any(keep) else np.inf


def _block_bootstrap_sigma(use, design, values, step_um, block_um, n_resamples, rng) -> float:
    """Standard deviation of the slope (column 1 of ``design``) over resamples of square spatial tiles.

    Hand-written: ``scipy.stats.bootstrap`` resamples single observations, not blocks of correlated ones.

    Returns 0 when there are fewer than 8 tiles (too few for a meaningful bootstrap: the
    least-squares error is then used alone).
    """
    if n_resamples <= 0 or step_um <= 0:
        return 0.0
    block = max(2, int(round(block_um / step_um)))
    rows, cols = np.nonzero(use)
    tile = (rows // block) * (use.shape[1] // block + 1) + cols // block
    _, tile_index = np.unique(tile, return_inverse=True)
    n_tiles = int(tile_index.max()) + 1
    if n_tiles < 8:
        return 0.0
    order = np.argsort(tile_index, kind="stable")
    bounds = np.searchsorted(tile_index[order], np.arange(n_tiles + 1))
    members = [order[bounds[k] : bounds[k + 1]] for k in range(n_tiles)]
    slopes = []
    for _ in range(n_resamples):
        idx = np.concatenate([members[k] for k in rng.integers(0, n_tiles, n_tiles)])
        coef, *_ = np.linalg.lstsq(design[idx], values[idx], rcond=None)
        slopes.append(coef[1])
    return float(np.std(slopes, ddof=1))


def particle_curvature(
    tilt_vector: np.ndarray,
    mask: np.ndarray,
    x_um,
    y_um,
    *,
    significance: float = 4.0,
    step_ratio_threshold: float = 0.5,
    rank2_threshold: float = 0.5,
    block_um: float = 0.4,
    n_block_bootstrap: int = 200,
    rng: np.random.Generator | None = None,
    name: str = "particle",
) -> CurvatureResult:
    """Radius of curvature of one particle from its tilt-vector map.

    Parameters
    ----------
    tilt_vector : (n_slow, n_fast, 2) tilt vector in degrees (see :func:`tilt_vector_deg`)
    mask : (n_slow, n_fast) bool, the particle's scan points (non-finite tilts inside are skipped)
    x_um, y_um : fast- and slow-axis positions (µm): 1-D axes or 2-D arrays of the map's shape
    significance : κ must exceed this many σ to count as measurable curvature (4 by default: the
        gradient direction is chosen to maximise κ, so under no bending κ/σ is ≤ a χ with 4 degrees
        of freedom, above 4 with probability 0.3 %)
    step_ratio_threshold : flag a step-like profile when RSS(step)/RSS(line) is below this
    rank2_threshold : flag a rank-2 gradient when σ₂/σ₁ of the gradient matrix exceeds this
    block_um, n_block_bootstrap : side of the square tiles (µm) and number of resamples of the spatial
        block bootstrap of κ; σ_κ is the larger of the least-squares and the block-bootstrap error, so
        residuals correlated over the footprint or a smooth mosaicity are not taken as independent
    rng : generator of the block bootstrap (default seeded 0: reproducible)
    name : used in error messages

    Returns
    -------
    CurvatureResult
    """
    tilt_vector = np.asarray(tilt_vector, dtype=float)
    mask = np.asarray(mask)
    if tilt_vector.ndim != 3 or tilt_vector.shape[-1] != 2:
        raise ValueError(
            f"{name}: tilt_vector has shape {tilt_vector.shape}; expected (n_slow, n_fast, 2) in deg "
            "(build it with tilt_vector_deg(tilt_deg, tilt_azimuth_deg))"
        )
    if mask.shape != tilt_vector.shape[:2]:
        raise ValueError(f"{name}: mask has shape {mask.shape} but the tilt map is {tilt_vector.shape[:2]}")
    if mask.dtype != bool:
        raise ValueError(f"{name}: mask must be boolean, got dtype {mask.dtype}")
    xx, yy, step_um = _grid_positions(x_um, y_um, mask.shape)
    use = mask & np.all(np.isfinite(tilt_vector), axis=-1) & np.isfinite(xx) & np.isfinite(yy)
    n = int(use.sum())
    if n < MIN_POINTS:
        raise ValueError(
            f"{name}: only {n} masked scan point(s) with finite tilt; a curvature needs at least "
            f"{MIN_POINTS} (check the mask threshold or the particle's scan window)"
        )
    pos = np.column_stack([xx[use], yy[use]])
    pos = pos - pos.mean(axis=0)
    tilt = tilt_vector[use]
    design = np.column_stack([np.ones(n), pos])
    if np.linalg.matrix_rank(design) < 3:
        raise ValueError(
            f"{name}: the {n} masked scan points lie on one line; the bending axis needs a 2-D patch"
        )
    coef, *_ = np.linalg.lstsq(design, tilt, rcond=None)
    gradient = coef[1:].T  # (2 tilt components, 2 spatial directions), deg/µm
    u_mat, singular, vt = np.linalg.svd(gradient)
    tilt_dir = u_mat[:, 0]
    grad_dir = vt[0]
    # sign convention: gradient direction in (-90°, 90°], tilt direction follows it
    angle = np.degrees(np.arctan2(grad_dir[1], grad_dir[0]))
    if angle <= -90 or angle > 90:
        grad_dir, tilt_dir = -grad_dir, -tilt_dir
        angle = np.degrees(np.arctan2(grad_dir[1], grad_dir[0]))
    second_ratio = float(singular[1] / singular[0]) if singular[0] > 0 else 0.0
    residual = tilt - design @ coef
    residual_rms = float(np.sqrt(np.mean(np.sum(residual**2, axis=1))))

    # 1-D refit of the projected tilt along the gradient direction, with its standard error
    s = pos @ grad_dir
    w = pos @ np.array([-grad_dir[1], grad_dir[0]])
    t_u = tilt @ tilt_dir
    design_1d = np.column_stack([np.ones(n), s, w])
    c1, *_ = np.linalg.lstsq(design_1d, t_u, rcond=None)
    rss_line = float(np.sum((t_u - design_1d @ c1) ** 2))
    dof = max(n - 3, 1)
    cov = rss_line / dof * np.linalg.inv(design_1d.T @ design_1d)
    kappa = float(c1[1])
    kappa_sigma_ols = float(np.sqrt(cov[1, 1]))
    kappa_sigma_block = _block_bootstrap_sigma(
        use,
        design_1d,
        t_u,
        step_um,
        block_um,
        n_block_bootstrap,
        np.random.default_rng(0) if rng is None else rng,
    )
    kappa_sigma = max(kappa_sigma_ols, kappa_sigma_block)

    # each scan point covers one cell: add its width projected on the gradient direction
    size_um = float(s.max() - s.min() + step_um * (abs(grad_dir[0]) + abs(grad_dir[1])))
    total = kappa * size_um
    total_sigma = kappa_sigma * size_um

    order = np.argsort(s)
    decile = max(1, n // 10)
    lo, hi = order[:decile], order[-decile:]
    ds = np.median(s[hi]) - np.median(s[lo])
    ends = (np.median(t_u[hi]) - np.median(t_u[lo])) / ds * size_um if ds > 0 else np.nan

    # step test on the profile after removing the w-dependence
    profile = (t_u - c1[2] * w)[order]
    step_ratio = _best_step_rss(profile) / rss_line if rss_line > 0 else np.inf

    flags: list[str] = []
    measurable = kappa > significance * kappa_sigma
    kappa_rad = np.deg2rad(kappa)
    kappa_sigma_rad = np.deg2rad(kappa_sigma)
    upper_kappa_rad = np.deg2rad(abs(kappa) + significance * kappa_sigma)
    lower_bound = 1.0 / upper_kappa_rad if upper_kappa_rad > 0 else np.inf
    if measurable:
        radius = 1.0 / kappa_rad
        radius_sigma = kappa_sigma_rad / kappa_rad**2
    else:
        flags.append(FLAG_FLAT)
        radius, radius_sigma = np.inf, np.nan
    if measurable and step_ratio < step_ratio_threshold:
        flags.append(FLAG_STEP)
    if measurable and second_ratio > rank2_threshold:
        flags.append(FLAG_RANK2)
    return CurvatureResult(
        radius_um=float(radius),
        radius_sigma_um=float(radius_sigma),
        radius_lower_bound_um=float(lower_bound),
        curvature_deg_per_um=kappa,
        curvature_sigma_deg_per_um=kappa_sigma,
        curvature_sigma_ols_deg_per_um=kappa_sigma_ols,
        curvature_sigma_block_deg_per_um=kappa_sigma_block,
        total_curvature_deg=float(total),
        total_curvature_sigma_deg=float(total_sigma),
        total_curvature_ends_deg=float(ends),
        size_um=size_um,
        gradient_direction_deg=float(angle),
        bending_axis_deg=float(angle + 90.0 if angle <= 0 else angle - 90.0),
        tilt_direction_deg=float(np.degrees(np.arctan2(tilt_dir[1], tilt_dir[0]))),
        second_singular_ratio=second_ratio,
        step_to_line_ratio=float(step_ratio),
        residual_rms_deg=residual_rms,
        n_points=n,
        flags=flags,
    )


@dataclass
class EnsembleFit:
    """Straight-line fit of total curvature Δφ (deg) against size L (µm) over particles.

    Attributes
    ----------
    through_origin : True for Δφ = L/R, False for Δφ = a + L/R
    radius_um, radius_sigma_um : R = 1/slope (slope in rad/µm) and its delta-method 1σ
    intercept_deg, intercept_sigma_deg : a and its 1σ (0 through the origin)
    slope_deg_per_um, slope_sigma_deg_per_um : the fitted slope
    radius_interval_um : percentile bootstrap interval of R over particles (``confidence``)
    radius_bootstrap_std_um : standard deviation of the bootstrap R (robust: middle 68 % half-width)
    n_particles, n_bootstrap, confidence : what went in
    names : particle names in the fit
    """

    through_origin: bool
    radius_um: float
    radius_sigma_um: float
    intercept_deg: float
    intercept_sigma_deg: float
    slope_deg_per_um: float
    slope_sigma_deg_per_um: float
    radius_interval_um: tuple[float, float]
    radius_bootstrap_std_um: float
    n_particles: int
    n_bootstrap: int
    confidence: float
    names: list[str]


def _line_fit(size_um: np.ndarray, total_deg: np.ndarray, through_origin: bool):
    """Least-squares slope (deg/µm), intercept (deg) and their 1σ."""
    n = size_um.size
    if through_origin:
        sxx = float(np.sum(size_um**2))
        slope = float(np.sum(size_um * total_deg) / sxx)
        dof = n - 1
        rss = float(np.sum((total_deg - slope * size_um) ** 2))
        return slope, float(np.sqrt(rss / dof / sxx)), 0.0, 0.0
    design = np.column_stack([np.ones(n), size_um])
    coef, *_ = np.linalg.lstsq(design, total_deg, rcond=None)
    rss = float(np.sum((total_deg - design @ coef) ** 2))
    dof = n - 2
    cov = rss / dof * np.linalg.inv(design.T @ design) if dof > 0 else np.full((2, 2), np.nan)
    return float(coef[1]), float(np.sqrt(cov[1, 1])), float(coef[0]), float(np.sqrt(cov[0, 0]))


def _slope_deg_per_um(size_um, total_deg, through_origin: bool, axis: int = -1):
    """Least-squares slope along ``axis`` (vectorised over resamples; NaN where all sizes are equal
    and the fit has an intercept); the same slope as :func:`_line_fit`."""
    if through_origin:
        return np.sum(size_um * total_deg, axis=axis) / np.sum(size_um**2, axis=axis)
    dx = size_um - np.mean(size_um, axis=axis, keepdims=True)
    dy = total_deg - np.mean(total_deg, axis=axis, keepdims=True)
    sxx = np.sum(dx**2, axis=axis)
    return np.where(sxx > 0, np.sum(dx * dy, axis=axis) / np.where(sxx > 0, sxx, 1.0), np.nan)


def ensemble_fit(
    size_um,
    total_curvature_deg,
    *,
    through_origin: bool = True,
    names: list[str] | None = None,
    n_bootstrap: int = 2000,
    confidence: float = 0.68,
    rng: np.random.Generator | None = None,
) -> EnsembleFit:
    """Ensemble radius of curvature from a straight-line fit of Δφ (deg) against size L (µm).

    Parameters
    ----------
    size_um, total_curvature_deg : per-particle sizes and total curvatures (same length, ≥ 3)
    through_origin : fit Δφ = L/R (True) or Δφ = a + L/R (False)
    names : particle names (default "1", "2", …)
    n_bootstrap : bootstrap resamples over particles
    confidence : central probability of the bootstrap interval (0.68 ≈ ±1σ, as the paper's ±)
    rng : ``numpy.random.Generator`` (default seeded 0, so results are reproducible)
    """
    size = np.asarray(size_um, dtype=float).ravel()
    total = np.asarray(total_curvature_deg, dtype=float).ravel()
    if size.size != total.size:
        raise ValueError(
            f"{size.size} sizes but {total.size} total curvatures: give one of each per particle"
        )
    if size.size < 3:
        raise ValueError(
            f"an ensemble fit needs at least 3 particles, got {size.size}: a line through fewer points "
            "has no uncertainty (add particles or report the per-particle R instead)"
        )
    if not (np.all(np.isfinite(size)) and np.all(np.isfinite(total))):
        bad = [i for i in range(size.size) if not (np.isfinite(size[i]) and np.isfinite(total[i]))]
        raise ValueError(f"non-finite size or total curvature for particle index(es) {bad}: drop them first")
    if np.any(size <= 0):
        raise ValueError("particle sizes must be positive (µm)")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    names = [str(i + 1) for i in range(size.size)] if names is None else [str(v) for v in names]
    if len(names) != size.size:
        raise ValueError(f"{len(names)} names for {size.size} particles")
    if not through_origin and np.ptp(size) == 0:
        raise ValueError("all particles have the same size: the slope of a fit with intercept is undefined")
    rng = np.random.default_rng(0) if rng is None else rng

    slope, slope_sigma, intercept, intercept_sigma = _line_fit(size, total, through_origin)
    if slope <= 0:
        raise ValueError(
            f"the fitted slope is {slope:.3g} deg/µm (≤ 0): curvature does not grow with size, so no "
            "common radius of curvature can be defined for these particles"
        )
    slope_rad = np.deg2rad(slope)
    radius = 1.0 / slope_rad
    radius_sigma = np.deg2rad(slope_sigma) / slope_rad**2

    # percentile bootstrap over particles (scipy.stats.bootstrap, pairs (L, Δφ) resampled together)
    import warnings

    from scipy.stats import DegenerateDataWarning, bootstrap

    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateDataWarning)  # NaN slopes are dropped below
        boot = bootstrap((size, total), lambda x, y, axis=-1: _slope_deg_per_um(x, y, through_origin, axis),
                         paired=True, vectorized=True, n_resamples=n_bootstrap, confidence_level=confidence,
                         method="percentile", random_state=rng)
    slopes = np.deg2rad(boot.bootstrap_distribution)
    slopes = slopes[np.isfinite(slopes)]  # a fit with intercept is undefined for one distinct size
    # R = 1/slope decreases monotonically with the slope: take quantiles of the slope (a resample
    # with slope ≤ 0 has R = ∞ and then sets the upper end of the interval to ∞)
    alpha = (1.0 - confidence) / 2.0

    def radius_at(quantile: float) -> float:
        b = float(np.quantile(slopes, quantile))
        return 1.0 / b if b > 0 else float("inf")

    interval = (radius_at(1.0 - alpha), radius_at(alpha))
    r16, r84 = radius_at(0.84135), radius_at(0.15865)
    return EnsembleFit(
        through_origin=through_origin,
        radius_um=float(radius),
        radius_sigma_um=float(radius_sigma),
        intercept_deg=intercept,
        intercept_sigma_deg=intercept_sigma,
        slope_deg_per_um=slope,
        slope_sigma_deg_per_um=slope_sigma,
        radius_interval_um=interval,
        radius_bootstrap_std_um=float((r84 - r16) / 2.0),
        n_particles=int(size.size),
        n_bootstrap=int(slopes.size),
        confidence=float(confidence),
        names=names,
    )


def radius_from_size_and_tilt(size_um: float, total_curvature_deg: float) -> float:
    """R = L / Δφ (µm) for one particle, the paper's hand calculation (4.3 µm, 0.51° → 483 µm)."""
    if size_um <= 0:
        raise ValueError(f"size must be positive, got {size_um} µm")
    if total_curvature_deg == 0:
        return float("inf")
    return float(size_um / np.deg2rad(abs(total_curvature_deg)))


#: quality flags of the reduction that make a particle's tilt map unreliable for a curvature
EXCLUDING_FLAGS = ("truncated_detector", "truncated_rocking", "split_peak")


def exclusion_reason(maps, max_flagged_fraction: float = 0.1) -> str | None:
    """Why a reduced particle must not enter the ensemble fit, or ``None`` when it may.

    A particle is excluded when more than ``max_flagged_fraction`` of its masked points carry a flag
    of :data:`EXCLUDING_FLAGS` (e.g. the peak runs off the detector edge: the centre of mass, hence the
    tilt, is biased towards the edge — the paper's particle 4), or when too few points are masked.

    Parameters
    ----------
    maps : :class:`helpers.sxdm.maps.SxdmMaps`
    max_flagged_fraction : tolerated fraction of flagged masked points
    """
    mask = np.asarray(maps.mask, bool)
    n = int(mask.sum())
    if n < MIN_POINTS:
        return f"only {n} masked scan points (need {MIN_POINTS})"
    reasons = []
    for name in EXCLUDING_FLAGS:
        frac = float(np.mean(maps.flagged(name)[mask]))
        if frac > max_flagged_fraction:
            reasons.append(f"{100 * frac:.0f} % of the masked points flagged {name}")
    return "; ".join(reasons) if reasons else None


def curvature_from_maps(maps, name: str = "particle", **kwargs) -> CurvatureResult:
    """:func:`particle_curvature` of a reduced :class:`~helpers.sxdm.maps.SxdmMaps` (its tilt components
    about the peak frame, its mask and piezo axes); ``kwargs`` go to :func:`particle_curvature`."""
    return particle_curvature(
        maps.tilt_xy_deg, np.asarray(maps.mask, bool), maps.x_um, maps.y_um, name=name, **kwargs
    )


@dataclass
class ParticleAnalysis:
    """Everything the ensemble table and the curvature fit need about one reduced particle.

    Attributes
    ----------
    name : particle name
    n_points : masked scan points
    mean_d_angstrom, microstrain : mean d and relative spread std(d)/mean(d) over the mask (Fig. 1E)
    n_domains : orientation domains with ≥ 5 % of the masked points
    main_domain_fraction : fraction of the masked points in the largest domain
    main_mask : (n_slow, n_fast) bool, the largest orientation domain (where R is measured)
    curvature : :class:`CurvatureResult` on ``main_mask``, or ``None`` when it could not be measured
    excluded : why the particle is left out of the ensemble fit, or ``None``
    """

    name: str
    n_points: int
    mean_d_angstrom: float
    microstrain: float
    n_domains: int
    main_domain_fraction: float
    main_mask: np.ndarray
    curvature: CurvatureResult | None
    excluded: str | None


def analyse_particle(
    maps,
    name: str = "particle",
    *,
    tilt_jump_deg: float = 0.08,
    max_flagged_fraction: float = 0.1,
    significance: float = 4.0,
    rng: np.random.Generator | None = None,
) -> ParticleAnalysis:
    """Quality flags, orientation domains and radius of curvature of one reduced particle.

    The curvature is measured on the largest orientation domain
    (:func:`helpers.sxdm.domains.segment_domains` on the tilt alone, neighbour jump ``tilt_jump_deg``):
    neighbouring crystallites and sub-grains with their own orientation would otherwise add their
    offsets to the tilt range of a fused aggregate. A particle is excluded from the ensemble when its
    reduction flags say the tilt is biased (:func:`exclusion_reason`), when no curvature is measurable,
    or when the tilt pattern is not one bending axis (step or rank-2 flags).
    """
    from helpers.sxdm.domains import segment_domains

    mask = np.asarray(maps.mask, bool)
    d = np.asarray(maps.d_spacing, float)[mask]
    d = d[np.isfinite(d)]
    mean_d = float(np.mean(d)) if d.size else float("nan")
    microstrain = float(np.std(d) / mean_d) if d.size else float("nan")
    reason = exclusion_reason(maps, max_flagged_fraction)
    tilt = maps.tilt_xy_deg
    main = mask
    n_domains, main_fraction = 0, 0.0
    if mask.sum() >= MIN_POINTS:
        labels = segment_domains(tilt, None, mask, tilt_jump_deg=tilt_jump_deg)
        counts = np.bincount(labels.ravel())[1:]
        n_domains = int(np.sum(counts >= 0.05 * mask.sum()))
        main = labels == 1
        main_fraction = float(counts[0] / mask.sum())
    result = None
    try:
        result = particle_curvature(
            tilt, main, maps.x_um, maps.y_um, significance=significance, rng=rng, name=name
        )
    except ValueError as err:
        reason = reason or str(err)
    if reason is None and result is not None and result.flags:
        reason = "; ".join(result.flags)
    return ParticleAnalysis(
        name=name,
        n_points=int(mask.sum()),
        mean_d_angstrom=mean_d,
        microstrain=microstrain,
        n_domains=n_domains,
        main_domain_fraction=main_fraction,
        main_mask=main,
        curvature=result,
        excluded=reason,
    )


def summary_rows(analyses: list[ParticleAnalysis]) -> list[dict]:
    """One row per particle (for a table): size, mean d, microstrain, total tilt, R, domains, exclusion."""
    rows = []
    for a in analyses:
        c = a.curvature
        rows.append(
            {
                "particle": a.name,
                "points": a.n_points,
                "size_um": c.size_um if c else float("nan"),
                "mean_d_A": a.mean_d_angstrom,
                "microstrain": a.microstrain,
                "total_tilt_deg": c.total_curvature_deg if c else float("nan"),
                "R_um": c.radius_um if c else float("nan"),
                "R_sigma_um": c.radius_sigma_um if c else float("nan"),
                "domains": a.n_domains,
                "excluded": a.excluded or "",
            }
        )
    return rows
