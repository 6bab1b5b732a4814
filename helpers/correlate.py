"""One crystal, two microscopes: SXDM strain/tilt maps against nano-CT voids of the same particle.

Chain (each step a function; :func:`correlate_files` runs them on result files):

1. :func:`ct_projection`: the CT particle (a label of a ``ct-analyse`` segmentation, closed by a
   2-voxel ball and hole-filled so that voids whose thin wall to the surface broke stay voids; its
   internal voids belong to it) projected along the SXDM beam direction (a CT volume axis): per column,
   the length of the particle envelope and of its voids (µm).
2. :func:`register`: a rigid 2-D alignment p_ct = R(angle) p_sxdm + shift (µm) of the CT solid
   (particle minus voids) projection, blurred by the SXDM beam footprint, onto the SXDM intensity
   map, refined from the user's rough alignment by Nelder–Mead (:func:`scipy.optimize.minimize`) on
   1 − NCC (normalised cross-correlation) after a coarse search over angles with
   :func:`skimage.registration.phase_cross_correlation` for the shift. The residual (intensity minus the
   best linear function of the resampled thickness, relative to the intensity's rms) is returned; a
   registration with NCC below ``min_ncc`` raises :class:`RegistrationError` (maps and volume of
   different particles, or a wrong rough alignment) instead of correlating noise.
3. :func:`association`: on the SXDM scan grid, the projected void fraction (void length / envelope
   length, both footprint-blurred) against Δd/d or the tilt deviation, averaged over square blocks
   (``block_um``, larger than the footprint and the void clusters, so that blocks are nearly
   independent); Pearson r with a bootstrap interval (:func:`scipy.stats.bootstrap`), a permutation
   test (:func:`scipy.stats.permutation_test`) and the coupling Δ(quantity)/Δ(void fraction) as
   var(q)/cov(q, f) (the regression of f on q: CT counting noise in f does not bias it), with its
   bootstrap interval.

Known bias of the coupling, and its truth-free correction: the coupling is per unit of *CT-measured*
void fraction. The CT chain misses part of the volume of voids a few voxels across (Paganin blur,
noise, threshold), so the measured coupling is the true one divided by the CT's void-volume recovery R.
:func:`estimate_recovery` predicts R without the particle's truth: a :class:`VoidRecoveryCalibration`
holds, for independent calibration phantoms run through the same chain at the same dose, the detection
curve r(d) (found void volume attributed to each true void over its true volume, by true diameter), the
factor from measured to true void diameter and the share of found void volume that belongs to a real
void (purity), by measured diameter; these are folded with the void table the CT measured on the
analysed particle. The prediction's uncertainty is its leave-one-out error over the calibration
phantoms; :func:`correct_coupling` multiplies κ by R and adds that uncertainty to the interval in
quadrature. A volume whose contrast-to-noise ratio or voxel size differ from the calibration's is
refused (:class:`CalibrationMismatch`).

This module may use :mod:`helpers.sxdm` and :mod:`helpers.nanoct` results but no forward model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


class RegistrationError(ValueError):
    """The CT projection does not match the SXDM map (different particles, or a bad rough alignment)."""


@dataclass(frozen=True)
class Alignment:
    """Rigid SXDM → CT map: p_ct = R(angle_deg) · p_sxdm + shift_um (µm, CT (x=col, y=row) · voxel)."""

    angle_deg: float
    shift_um: tuple[float, float]

    def apply(self, x_um: np.ndarray, y_um: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """CT in-plane coordinates (µm) of SXDM points."""
        a = np.radians(self.angle_deg)
        xc = np.cos(a) * x_um - np.sin(a) * y_um + self.shift_um[0]
        yc = np.sin(a) * x_um + np.cos(a) * y_um + self.shift_um[1]
        return xc, yc


@dataclass
class CtProjection:
    """A CT particle projected along the SXDM beam: column lengths (µm) on the CT grid."""

    envelope_um: np.ndarray
    void_um: np.ndarray
    voxel_um: float
    label: int
    axis: int


@dataclass
class Registration:
    """Result of :func:`register`."""

    alignment: Alignment
    ncc: float
    residual_rel: float
    residual_map: np.ndarray
    thickness_on_sxdm: np.ndarray


@dataclass
class Association:
    """Association between the projected void fraction and one SXDM quantity (block averages)."""

    quantity: str
    n_blocks: int
    r: float
    r_ci: tuple[float, float]
    p_value: float
    coupling: float
    coupling_ci: tuple[float, float]
    confidence: float
    verdict: str
    void_fraction: np.ndarray = field(repr=False)
    values: np.ndarray = field(repr=False)


def ct_projection(
    labels: np.ndarray,
    grey: np.ndarray,
    void_threshold: float,
    voxel_size_um: float,
    label: int | None = None,
    axis: int = 0,
    closing_radius_vox: int = 2,
) -> CtProjection:
    """Project one CT particle's envelope and its voids (see :func:`found_void_mask`) along ``axis``.

    ``label`` None takes the largest particle. Raises ``ValueError`` naming a missing voxel size or an
    absent label.
    """
    if voxel_size_um is None or not np.isfinite(voxel_size_um) or voxel_size_um <= 0:
        raise ValueError(f"CT voxel size missing or invalid ({voxel_size_um!r}): pass voxel_size_um in µm")
    if labels.shape != grey.shape:
        raise ValueError(f"labels {labels.shape} and grey volume {grey.shape} differ in shape")
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2 (the CT volume axis along the SXDM beam), got {axis}")
    particle, voids, label = found_void_mask(labels, grey, void_threshold, label, closing_radius_vox)
    env = particle.sum(axis=axis) * voxel_size_um
    void = voids.sum(axis=axis) * voxel_size_um
    return CtProjection(env.astype(float), void.astype(float), float(voxel_size_um), int(label), axis)


def found_void_mask(
    labels: np.ndarray,
    grey: np.ndarray,
    void_threshold: float,
    label: int | None = None,
    closing_radius_vox: int = 2,
) -> tuple[np.ndarray, np.ndarray, int]:
    """(envelope, voids, label) of one labelled CT particle; ``label`` None takes the largest particle.

    The envelope is the particle's mask closed by a ball of ``closing_radius_vox`` voxels and hole-filled
    (as :func:`helpers.nanoct.voids.voids_from_particle_statistics` builds it): a void whose thin wall
    to the surface the Paganin blur and the threshold broke is left open by the segmentation, and would
    otherwise be counted as outside the crystal. Voids: envelope voxels with ``grey ≤ void_threshold``.
    These are the voids the coupling is measured with. ``closing_radius_vox`` 0: the label as it is.
    """
    import fill_voids

    if labels.shape != grey.shape:
        raise ValueError(f"labels {labels.shape} and grey volume {grey.shape} differ in shape")
    if label is None:
        counts = np.bincount(labels.ravel())
        if counts.size < 2:
            raise ValueError("the CT segmentation holds no particle (all labels are 0)")
        label = int(np.argmax(counts[1:]) + 1)
    particle = labels == label
    if not particle.any():
        raise ValueError(f"label {label} does not occur in the CT segmentation")
    if closing_radius_vox > 0:
        r = int(closing_radius_vox)
        ball = ndimage.iterate_structure(ndimage.generate_binary_structure(3, 1), r)
        closed = ndimage.binary_closing(np.pad(particle, r + 1), structure=ball)
        closed = closed[(slice(r + 1, -r - 1),) * 3]
        particle = fill_voids.fill(np.ascontiguousarray(closed | particle), in_place=False)
    return particle, particle & (grey <= void_threshold), int(label)


def _grid(maps) -> tuple[np.ndarray, np.ndarray, float]:
    x, y = np.asarray(maps.x_um, float), np.asarray(maps.y_um, float)
    if x.size < 2 or y.size < 2 or not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("SXDM maps lack scan positions (x_um, y_um): the pixel size of the map is unknown")
    if x.ndim == 1:
        x, y = np.meshgrid(x, y)
    steps = [abs(float(x[0, 1] - x[0, 0])), abs(float(y[1, 0] - y[0, 0]))]
    if min(steps) <= 0:
        raise ValueError(f"SXDM scan positions do not advance (steps {steps} µm): pixel size unknown")
    return x, y, float(np.mean(steps))


def resample(
    ct_map: np.ndarray,
    voxel_um: float,
    alignment: Alignment,
    x_um: np.ndarray,
    y_um: np.ndarray,
    footprint_fwhm_um: float,
) -> np.ndarray:
    """A CT column map blurred by the beam footprint and sampled at the SXDM points (linear)."""
    sigma = footprint_fwhm_um * FWHM_TO_SIGMA / voxel_um
    blurred = ndimage.gaussian_filter(ct_map, sigma) if sigma > 0 else ct_map
    xc, yc = alignment.apply(x_um, y_um)
    return ndimage.map_coordinates(blurred, [yc / voxel_um, xc / voxel_um], order=1, cval=0.0)


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt(np.sum(a * a) * np.sum(b * b))
    return float(np.sum(a * b) / den) if den > 0 else 0.0


def register(
    maps,
    ct: CtProjection,
    initial: Alignment,
    footprint_fwhm_um: float = 0.1,
    angle_range_deg: float = 15.0,
    min_ncc: float = 0.9,
) -> Registration:
    """Rigid registration of the CT solid projection onto the SXDM intensity (see module docstring).

    ``initial``: the user's rough alignment (within ≈ ``angle_range_deg`` and half a particle size).
    """
    from scipy.optimize import minimize
    from skimage.registration import phase_cross_correlation

    x, y, step = _grid(maps)
    intensity = np.nan_to_num(np.asarray(maps.intensity, float))
    if not np.any(intensity > 0):
        raise ValueError("the SXDM intensity map is empty")
    target = intensity / intensity.max()

    def model(p):
        al = Alignment(p[0], (p[1], p[2]))
        return resample(solid, ct.voxel_um, al, x, y, footprint_fwhm_um)

    solid = ct.envelope_um - ct.void_um  # SXDM intensity follows the NMC that scatters, voids excluded

    def cost(p):
        return 1.0 - _ncc(model(p), target)

    best = None
    rot = np.radians
    for da in np.arange(-angle_range_deg, angle_range_deg + 1e-9, 2.5):
        p = np.array([initial.angle_deg + da, *initial.shift_um])
        img = model(p)
        if img.max() <= 0:
            continue
        shift_px, _, _ = phase_cross_correlation(
            target, img / img.max(), upsample_factor=4, normalization=None
        )
        # the model image moves by +s (rows, cols) when the CT point sampled at p_s shifts by −s·step:
        # p_ct = R (p_s − s step) + t  →  t' = t − R s step
        a = rot(p[0])
        ds = np.array([shift_px[1], shift_px[0]]) * step
        p[1:] -= np.array([np.cos(a) * ds[0] - np.sin(a) * ds[1], np.sin(a) * ds[0] + np.cos(a) * ds[1]])
        c = cost(p)
        if best is None or c < best[0]:
            best = (c, p)
    if best is None:
        raise RegistrationError(
            "the CT projection falls outside the SXDM map at every trial angle: "
            "check the rough alignment (shift in µm of the CT frame)"
        )
    res = minimize(
        cost,
        best[1],
        method="Nelder-Mead",
        options={
            "xatol": 1e-3,
            "fatol": 1e-7,
            "initial_simplex": best[1] + np.array([[0, 0, 0], [1.0, 0, 0], [0, step, 0], [0, 0, step]]),
        },
    )
    p = res.x
    thickness = model(p)
    ncc = 1.0 - float(res.fun)
    design = np.column_stack([thickness.ravel(), np.ones(thickness.size)])
    coef, *_ = np.linalg.lstsq(design, target.ravel(), rcond=None)
    residual = target - (design @ coef).reshape(target.shape)
    residual_rel = float(np.sqrt(np.mean(residual**2)) / np.sqrt(np.mean(target**2)))
    alignment = Alignment(float(p[0]), (float(p[1]), float(p[2])))
    if ncc < min_ncc:
        raise RegistrationError(
            f"registration failed: NCC {ncc:.3f} < {min_ncc} (relative residual {residual_rel:.2f}) at "
            f"angle {alignment.angle_deg:.1f}°, shift ({p[1]:.2f}, {p[2]:.2f}) µm: the SXDM maps and the CT "
            "particle do not look like the same crystal. Check that both files are of the same particle, "
            "the CT label, the projection axis and the rough alignment; no correlation was computed."
        )
    return Registration(alignment, ncc, residual_rel, residual, thickness)


def _blocks(
    values: list[np.ndarray],
    valid: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    block_um: float,
    min_share: float = 0.5,
) -> list[np.ndarray]:
    ix = np.floor((x - x.min()) / block_um).astype(int)
    iy = np.floor((y - y.min()) / block_um).astype(int)
    key = iy * (ix.max() + 1) + ix
    per_block = np.bincount(key.ravel(), minlength=key.max() + 1)
    n_valid = np.bincount(key[valid], minlength=per_block.size)
    keep = n_valid >= np.maximum(min_share * per_block, 1)
    out = []
    for v in values:
        s = np.bincount(key[valid], weights=v[valid], minlength=per_block.size)
        out.append(s[keep] / n_valid[keep])
    return out


def _rng_keyword(rng: np.random.Generator) -> dict:
    """SciPy ≥ 1.15 takes ``rng=``, older versions (the workbook supports ≥ 1.11) ``random_state=``."""
    import scipy

    major, minor = (int(v) for v in scipy.__version__.split(".")[:2])
    return {"rng": rng} if (major, minor) >= (1, 15) else {"random_state": rng}


def association(
    maps,
    ct: CtProjection,
    alignment: Alignment,
    quantity: str = "d",
    block_um: float = 0.3,
    footprint_fwhm_um: float = 0.1,
    min_envelope_fraction: float = 0.5,
    confidence: float = 0.95,
    alpha: float = 0.01,
    n_resamples: int = 2000,
    seed: int = 0,
) -> Association:
    """Association of the projected void fraction with Δd/d (``quantity="d"``) or the tilt deviation
    from the particle mean (``"tilt"``, deg), on blocks of ``block_um`` (see module docstring).

    Points used: inside the SXDM mask, with a finite value, and a CT envelope at least
    ``min_envelope_fraction`` of its maximum (away from the thin edges, where the footprint mixes
    particle and vacuum differently in the two techniques). Verdict "association" when the permutation
    p-value is below ``alpha`` and the bootstrap interval of r excludes 0, else "no association".
    """
    from scipy import stats

    x, y, _ = _grid(maps)
    env = resample(ct.envelope_um, ct.voxel_um, alignment, x, y, footprint_fwhm_um)
    void = resample(ct.void_um, ct.voxel_um, alignment, x, y, footprint_fwhm_um)
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(env > 0, void / env, np.nan)
    if quantity == "d":
        d = np.asarray(maps.d_spacing, float)
        values = d / np.nanmean(d[maps.mask]) - 1.0
    elif quantity == "tilt":
        values = np.asarray(maps.tilt_deg, float)
    else:
        raise ValueError(f"quantity must be 'd' or 'tilt', got {quantity!r}")
    valid = (
        np.asarray(maps.mask, bool)
        & np.isfinite(values)
        & np.isfinite(fraction)
        & (env >= min_envelope_fraction * np.nanmax(env))
    )
    f_b, q_b = _blocks([np.nan_to_num(fraction), np.nan_to_num(values)], valid, x, y, block_um)
    if f_b.size < 8:
        raise ValueError(
            f"only {f_b.size} blocks of {block_um} µm hold enough points: use smaller blocks "
            "or a larger particle (at least 8 are needed for an interval)"
        )

    def pearson(f, q, axis=-1):
        f = f - f.mean(axis=axis, keepdims=True)
        q = q - q.mean(axis=axis, keepdims=True)
        return np.sum(f * q, axis=axis) / np.sqrt(np.sum(f * f, axis=axis) * np.sum(q * q, axis=axis))

    def coupling(f, q, axis=-1):
        qc = q - q.mean(axis=axis, keepdims=True)
        fc = f - f.mean(axis=axis, keepdims=True)
        return np.sum(qc * qc, axis=axis) / np.sum(qc * fc, axis=axis)

    rng = _rng_keyword(np.random.default_rng(seed))
    r = float(pearson(f_b, q_b))
    boot_r = stats.bootstrap(
        (f_b, q_b),
        pearson,
        paired=True,
        vectorized=True,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        **rng,
    )
    boot_k = stats.bootstrap(
        (f_b, q_b),
        coupling,
        paired=True,
        vectorized=True,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        **rng,
    )
    perm = stats.permutation_test(
        (f_b, q_b),
        pearson,
        permutation_type="pairings",
        vectorized=True,
        n_resamples=n_resamples,
        alternative="two-sided",
        **rng,
    )
    r_ci = (float(boot_r.confidence_interval.low), float(boot_r.confidence_interval.high))
    significant = perm.pvalue < alpha and (r_ci[0] > 0 or r_ci[1] < 0)
    return Association(
        quantity=quantity,
        n_blocks=int(f_b.size),
        r=r,
        r_ci=r_ci,
        p_value=float(perm.pvalue),
        coupling=float(coupling(f_b, q_b)),
        coupling_ci=(float(boot_k.confidence_interval.low), float(boot_k.confidence_interval.high)),
        confidence=confidence,
        verdict="association" if significant else "no association",
        void_fraction=f_b,
        values=q_b,
    )


# ----------------------------------------------------------------------------------------------
# truth-free correction of the coupling for the CT's void-volume recovery
# ----------------------------------------------------------------------------------------------
RECOVERY_BINS_UM = (0.0, 0.075, 0.10, 0.125, 0.15, 0.175, 0.20, 0.25, 0.30, np.inf)
MIN_VOIDS_PER_BIN = 5
MIN_RECOVERY = 0.25


class CalibrationMismatch(ValueError):
    """The analysed volume was not taken like the calibration phantoms (contrast-to-noise, voxel size)."""


def volume_cnr(grey: np.ndarray, particle: np.ndarray, void_threshold: float, air_gap_vox: int = 6) -> float:
    """Contrast-to-noise ratio of a reconstructed particle in air (dimensionless).

    (median grey of the particle's NMC, two voxels inside its surface − median grey of the air more than
    ``air_gap_vox`` voxels away) / robust σ of that air (1.4826 × MAD). Grey values 0 and 255 (clipped,
    or outside the reconstructed field) are left out.
    """
    grey = np.asarray(grey)
    unclipped = (grey > 0) & (grey < 255)
    nmc = ndimage.binary_erosion(particle & (grey > void_threshold), iterations=2) & unclipped
    air = ~ndimage.binary_dilation(particle, iterations=air_gap_vox) & unclipped
    if nmc.sum() < 100 or air.sum() < 100:
        raise ValueError(
            f"too few NMC ({int(nmc.sum())}) or air ({int(air.sum())}) voxels to measure the "
            "contrast-to-noise ratio: the particle must sit in air with a margin of a few voxels"
        )
    g_air = grey[air].astype(float)
    sigma = 1.4826 * np.median(np.abs(g_air - np.median(g_air)))
    return float((np.median(grey[nmc]) - np.median(g_air)) / sigma)


def void_components(void_mask: np.ndarray, voxel_um: float, min_voxels: int = 2) -> dict:
    """The measured void table of a void mask: 26-connected components of ≥ ``min_voxels`` voxels (the
    definition of ``ct-analyse``'s void table), their voxel counts and volume-equivalent diameters (µm).

    Returns ``{"labels", "volume_vox", "d_eq_um"}`` (labels 1..n on the mask's grid)."""
    import cc3d

    mask = np.asarray(void_mask, bool)
    if min_voxels > 1 and mask.any():
        mask = cc3d.dust(mask, threshold=min_voxels, connectivity=26, binary_image=True).astype(bool)
    comps, n = cc3d.connected_components(mask, connectivity=26, return_N=True)
    vol = np.bincount(comps.ravel(), minlength=n + 1)[1:].astype(np.int64)
    return {"labels": comps, "volume_vox": vol, "d_eq_um": (6.0 * vol / np.pi) ** (1.0 / 3.0) * voxel_um}


def void_detection_record(
    found_void: np.ndarray, true_void: np.ndarray, voxel_um: float, reach_vox: float = 2.0
) -> dict:
    """What the CT found of known voids (one calibration phantom), per true and per found void.

    A found void voxel belongs to the nearest true void when it lies within ``reach_vox`` voxels of it
    (Paganin blur moves a void's edge by about a voxel; the coupling sees that volume, as it moves with
    the voids), else it is a false detection. Returns arrays: ``true_d_um``, ``true_vox`` and
    ``true_found_vox`` (found voxels belonging to each true void), and for the measured void table
    (:func:`void_components` of ``found_void``) ``found_d_um``, ``found_vox``, ``found_real_vox`` (its
    voxels that belong to a true void) and ``found_true_d_um`` (diameter of the true void holding most of
    its voxels; NaN for a false detection).
    """
    true = void_components(true_void, voxel_um, min_voxels=1)
    found = void_components(found_void, voxel_um)
    tl, fl = true["labels"], found["labels"]
    n_t, n_f = true["volume_vox"].size, found["volume_vox"].size
    dist, idx = ndimage.distance_transform_edt(tl == 0, return_indices=True)
    owner = tl[tuple(idx)]
    owner[dist > reach_vox] = 0
    sel = fl > 0
    own = owner[sel]
    true_found = np.bincount(own, minlength=n_t + 1)[1:]
    real = np.bincount(fl[sel], weights=(own > 0), minlength=n_f + 1)[1:]
    found_true_d = np.full(n_f, np.nan)
    if n_f and n_t:
        pair = np.bincount(fl[sel][own > 0] * (n_t + 1) + own[own > 0], minlength=(n_f + 1) * (n_t + 1))
        pair = pair.reshape(n_f + 1, n_t + 1)[1:, 1:]
        has = pair.sum(axis=1) > 0
        found_true_d[has] = true["d_eq_um"][np.argmax(pair[has], axis=1)]
    return {
        "true_d_um": true["d_eq_um"], "true_vox": true["volume_vox"], "true_found_vox": true_found,
        "found_d_um": found["d_eq_um"], "found_vox": found["volume_vox"], "found_real_vox": real,
        "found_true_d_um": found_true_d,
    }


def _bin(d_um: np.ndarray, edges) -> np.ndarray:
    return np.clip(np.digitize(d_um, edges) - 1, 0, len(edges) - 2)


def _fill_empty(values: np.ndarray) -> np.ndarray:
    """Bins without calibration data take the value of the nearest bin that has some."""
    ok = np.flatnonzero(np.isfinite(values))
    if ok.size == 0:
        raise ValueError("the calibration holds no void in any size bin")
    idx = np.arange(values.size)
    return values[ok[np.argmin(np.abs(idx[:, None] - ok[None, :]), axis=1)]]


def block_transfer_slope(
    found_particle: np.ndarray,
    found_void: np.ndarray,
    true_envelope: np.ndarray,
    true_void: np.ndarray,
    voxel_um: float,
    axis: int = 0,
    footprint_fwhm_um: float = 0.1,
    block_um: float = 0.3,
    min_envelope_fraction: float = 0.5,
) -> float:
    """Slope of the CT-measured projected void fraction on the true one, over the blocks the
    association uses (same projection, footprint blur, block size and envelope cut; least squares of
    measured on true, the true fraction being exact). The factor by which the CT chain scales the
    void-fraction *differences* the coupling is measured from: κ_measured = κ / slope."""
    sigma = footprint_fwhm_um * FWHM_TO_SIGMA / voxel_um

    def fraction(env, void):
        e = ndimage.gaussian_filter(env.sum(axis=axis) * voxel_um, sigma)
        v = ndimage.gaussian_filter(void.sum(axis=axis) * voxel_um, sigma)
        return e, np.where(e > 0, v / np.maximum(e, 1e-12), 0.0)

    env_t, f_t = fraction(true_envelope, true_void)
    env_m, f_m = fraction(found_particle, found_void)
    rows, cols = np.indices(env_t.shape) * voxel_um
    valid = (env_t >= min_envelope_fraction * env_t.max()) & (env_m >= min_envelope_fraction * env_m.max())
    ft, fm = _blocks([f_t, f_m], valid, cols, rows, block_um)
    ft = ft - ft.mean()
    return float(np.sum(ft * (fm - fm.mean())) / np.sum(ft * ft))


@dataclass
class VoidRecoveryCalibration:
    """Void detection of one CT chain on calibration phantoms (one record per phantom, see
    :func:`void_detection_record`), with the contrast-to-noise ratio and voxel size they were taken at."""

    records: list
    cnr: np.ndarray
    voxel_um: float
    bins_um: tuple = RECOVERY_BINS_UM
    info: dict = field(default_factory=dict)

    def curves(self, use=None) -> dict:
        """Pooled over the phantoms ``use`` (default all): the detection curve ``recovery`` by true
        diameter, and by measured diameter the ``size_factor`` (volume-weighted median true/measured
        diameter of found voids) and the ``purity`` (share of found volume in real voids)."""
        recs = [self.records[i] for i in (range(len(self.records)) if use is None else use)]
        nb = len(self.bins_um) - 1
        cat = {k: np.concatenate([np.asarray(r[k], float) for r in recs]) for k in recs[0]}
        tb = _bin(cat["true_d_um"], self.bins_um)
        fb = _bin(cat["found_d_um"], self.bins_um)
        true_vol = np.bincount(tb, weights=cat["true_vox"], minlength=nb)
        with np.errstate(invalid="ignore", divide="ignore"):
            recovery = np.bincount(tb, weights=cat["true_found_vox"], minlength=nb) / true_vol
            found_vol = np.bincount(fb, weights=cat["found_vox"], minlength=nb)
            purity = np.bincount(fb, weights=cat["found_real_vox"], minlength=nb) / found_vol
        # a bin measured on fewer than MIN_VOIDS_PER_BIN voids is no measurement: it takes its neighbour's
        recovery[np.bincount(tb, minlength=nb) < MIN_VOIDS_PER_BIN] = np.nan
        # below MIN_RECOVERY the fold would divide found volume by a noisy number near 0: such small voids
        # are out of the CT's reach; found volume corrected into that bin takes its neighbour's recovery
        recovery[recovery < MIN_RECOVERY] = np.nan
        purity[np.bincount(fb, minlength=nb) < MIN_VOIDS_PER_BIN] = np.nan
        factor = np.full(nb, np.nan)
        matched = np.isfinite(cat["found_true_d_um"])
        for b in range(nb):
            s = matched & (fb == b)
            if s.sum() >= MIN_VOIDS_PER_BIN:
                ratio = cat["found_true_d_um"][s] / cat["found_d_um"][s]
                order = np.argsort(ratio)
                cw = np.cumsum(cat["found_vox"][s][order])
                factor[b] = ratio[order][np.searchsorted(cw, cw[-1] / 2)]
        return {
            "recovery": _fill_empty(recovery),
            "size_factor": _fill_empty(factor),
            "purity": _fill_empty(purity),
        }

    def fold(self, found_d_um: np.ndarray, found_vox: np.ndarray, use=None) -> float:
        """Predicted void-volume recovery of a particle whose CT found voids of diameters ``found_d_um``
        (µm) and volumes ``found_vox``: R = Σ p V / Σ p V / r(c d), with c the size factor and p the
        purity at the measured diameter d, r the detection curve at the corrected diameter c d."""
        c = self.curves(use)
        found_d_um, found_vox = np.asarray(found_d_um, float), np.asarray(found_vox, float)
        if found_d_um.size == 0:
            raise ValueError("the CT found no void in the particle: there is no coupling to correct")
        mb = _bin(found_d_um, self.bins_um)
        real = c["purity"][mb] * found_vox
        tb = _bin(found_d_um * c["size_factor"][mb], self.bins_um)
        return float(real.sum() / np.sum(real / c["recovery"][tb]))

    def true_recovery(self, i: int) -> float:
        """Phantom ``i``'s actual recovery (found voxels belonging to true voids / true void voxels)."""
        r = self.records[i]
        return float(np.sum(r["true_found_vox"]) / np.sum(r["true_vox"]))

    def leave_one_out(self) -> np.ndarray:
        """Relative error of the fold on each phantom predicted from the others (predicted / actual − 1)."""
        n = len(self.records)
        if n < 3:
            raise ValueError(f"a calibration needs at least 3 phantoms for its uncertainty, got {n}")
        out = []
        for i in range(n):
            r = self.records[i]
            pred = self.fold(r["found_d_um"], r["found_vox"], use=[j for j in range(n) if j != i])
            out.append(pred / self.true_recovery(i) - 1.0)
        return np.array(out)

    def to_json(self) -> str:
        """JSON text of the calibration (for a cache file)."""
        import json

        return json.dumps({
            "records": [{k: np.asarray(v).tolist() for k, v in r.items()} for r in self.records],
            "cnr": np.asarray(self.cnr).tolist(), "voxel_um": self.voxel_um,
            "bins_um": [b if np.isfinite(b) else None for b in self.bins_um], "info": self.info,
        })

    @classmethod
    def from_json(cls, text: str) -> VoidRecoveryCalibration:
        """Inverse of :meth:`to_json`."""
        import json

        d = json.loads(text)
        recs = [{k: np.asarray(v, float) for k, v in r.items()} for r in d["records"]]
        bins = tuple(np.inf if b is None else float(b) for b in d["bins_um"])
        return cls(recs, np.asarray(d["cnr"], float), float(d["voxel_um"]), bins, d.get("info", {}))


@dataclass
class RecoveryEstimate:
    """Predicted void-volume recovery of the analysed particle and its 1-σ uncertainty (both fractions)."""

    recovery: float
    sigma: float
    cnr: float
    calibration_cnr: tuple[float, float]
    loo_bias: float
    n_phantoms: int


def estimate_recovery(
    calibration: VoidRecoveryCalibration,
    found_void: np.ndarray,
    voxel_um: float,
    cnr: float,
    cnr_tolerance: float = 0.2,
) -> RecoveryEstimate:
    """Void-volume recovery of the CT on the analysed particle, from its own measured void table
    (:func:`void_components` of ``found_void``) and the calibration (no truth of the particle).

    σ is the root-mean-square leave-one-out error of the fold over the calibration phantoms (what a
    new particle's recovery scatters around the prediction). Raises :class:`CalibrationMismatch` when
    the voxel size differs by more than 1 % or the contrast-to-noise ratio lies more than
    ``cnr_tolerance`` (relative) outside the calibration phantoms' range: the detection curve of small
    voids moves with the noise, and the calibration must be redone at the data's dose.
    """
    if not np.isclose(voxel_um, calibration.voxel_um, rtol=0.01):
        raise CalibrationMismatch(
            f"voxel size {voxel_um} µm differs from the calibration's {calibration.voxel_um} µm: the void "
            "detection curve is in voxels of that size; calibrate with phantoms at the data's voxel size"
        )
    lo, hi = float(np.min(calibration.cnr)), float(np.max(calibration.cnr))
    if not lo * (1 - cnr_tolerance) <= cnr <= hi * (1 + cnr_tolerance):
        raise CalibrationMismatch(
            f"the volume's contrast-to-noise ratio {cnr:.2f} lies outside the calibration's "
            f"{lo:.2f}–{hi:.2f} (± {cnr_tolerance:.0%}): its void detection differs; calibrate with "
            "phantoms simulated at the data's dose (photon count) before correcting the coupling"
        )
    table = void_components(found_void, voxel_um)
    loo = calibration.leave_one_out()
    return RecoveryEstimate(
        recovery=calibration.fold(table["d_eq_um"], table["volume_vox"]),
        sigma=float(np.sqrt(np.mean(loo**2))) * calibration.fold(table["d_eq_um"], table["volume_vox"]),
        cnr=float(cnr),
        calibration_cnr=(lo, hi),
        loo_bias=float(np.mean(loo)),
        n_phantoms=len(calibration.records),
    )


@dataclass
class CorrectedCoupling:
    """Coupling per unit of true void fraction: κ · R, with the interval widened for R's uncertainty."""

    coupling: float
    coupling_ci: tuple[float, float]
    recovery: float
    recovery_sigma: float


def correct_coupling(result: Association, recovery: RecoveryEstimate) -> CorrectedCoupling:
    """κ_true = κ_measured · R. The interval: the bootstrap interval's lower and upper relative
    half-widths each combined in quadrature with z · σ_R / R (z of the same confidence level)."""
    from scipy import stats

    z = stats.norm.ppf(0.5 + result.confidence / 2)
    k = result.coupling
    rel_r = z * recovery.sigma / recovery.recovery
    lo = abs(k - result.coupling_ci[0]) / abs(k)
    hi = abs(result.coupling_ci[1] - k) / abs(k)
    kc = k * recovery.recovery
    ci = (kc * (1 - np.hypot(lo, rel_r)), kc * (1 + np.hypot(hi, rel_r)))
    return CorrectedCoupling(float(kc), (float(ci[0]), float(ci[1])), recovery.recovery, recovery.sigma)


def read_ct_analysis(path, volume_path=None, dataset: str | None = None, voxel_size_um: float | None = None):
    """Cluster labels, grey volume, void threshold and voxel size of a ``ct-analyse`` output.

    Particles of one connected NMC cluster are merged (label = cluster id + 1): a crystal riddled with
    voids is often split by the watershed, and SXDM sees it whole.

    The grey volume is ``volume_path`` (default: the analysed file named in the output's
    ``input_file`` attribute, looked up beside it) and its ``dataset`` (default: ``input_dataset``).
    Raises ``ValueError``/``OSError`` naming what is missing.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise OSError(f"CT analysis file {path} does not exist")
    with h5py.File(path, "r") as f:
        if "labels" not in f:
            raise ValueError(f"{path.name} has no /labels: is it a ct-analyse output?")
        labels = f["labels"][()]
        attrs = dict(f.attrs)
        if "particles/label" in f and "particles/cluster" in f:
            # watershed splits a void-riddled crystal into several labels of one connected cluster:
            # the correlative analysis wants the whole crystal, so labels become cluster ids
            lut = np.zeros(int(labels.max()) + 1, dtype=np.int32)
            lut[f["particles/label"][()].astype(int)] = f["particles/cluster"][()].astype(int) + 1
            labels = lut[labels]
    missing = [k for k in ("void_threshold_grey",) if k not in attrs]
    if voxel_size_um is None:
        if "voxel_size_um" not in attrs:
            missing.append("voxel_size_um (or pass voxel_size_um)")
        else:
            voxel_size_um = float(attrs["voxel_size_um"])
    if missing:
        raise ValueError(f"{path.name} lacks {', '.join(missing)}")
    if volume_path is None:
        name = str(attrs.get("input_file", ""))
        if not name:
            raise ValueError(f"{path.name} does not name its grey volume (input_file): pass the volume path")
        volume_path = path.parent / name
    dataset = dataset or (str(attrs.get("input_dataset", "")) or None)
    grey = read_grey(volume_path, dataset)
    return labels, grey, float(attrs["void_threshold_grey"]), float(voxel_size_um)


def read_grey(path, dataset: str | None = None) -> np.ndarray:
    """The whole grey volume of an HDF5/TIFF/NPY file (a single particle's volume fits in memory)."""
    from helpers.nanoct.volume_io import open_volume

    reader = open_volume(Path(path), dataset)
    return np.asarray(reader[0 : reader.shape[0]])


def otsu_threshold(path, dataset: str | None = None) -> int:
    """Otsu's grey threshold of a two-phase volume (one crystal in air: NMC vs air/voids)."""
    from skimage.filters import threshold_otsu

    return int(threshold_otsu(read_grey(path, dataset)))


def correlate_files(
    maps_path,
    ct_analysis_path,
    initial: Alignment,
    volume_path=None,
    dataset=None,
    label: int | None = None,
    axis: int = 0,
    footprint_fwhm_um: float | None = None,
    block_um: float = 0.3,
    voxel_size_um: float | None = None,
    min_ncc: float = 0.9,
):
    """Register and associate a real SXDM maps file and a ct-analyse output of the same particle.

    ``footprint_fwhm_um`` default: the SXDM scan step (the beam is usually about the step size).
    Returns ``(registration, {"d": Association, "tilt": Association})``.
    """
    from helpers.sxdm.maps import read_maps

    maps = read_maps(maps_path)
    _, _, step = _grid(maps)
    labels, grey, void_threshold, voxel = read_ct_analysis(
        ct_analysis_path, volume_path, dataset, voxel_size_um
    )
    ct = ct_projection(labels, grey, void_threshold, voxel, label=label, axis=axis)
    fw = step if footprint_fwhm_um is None else footprint_fwhm_um
    reg = register(maps, ct, initial, fw, min_ncc=min_ncc)
    out = {q: association(maps, ct, reg.alignment, q, block_um, fw) for q in ("d", "tilt")}
    return reg, out


def read_calibration(path) -> VoidRecoveryCalibration:
    """A :class:`VoidRecoveryCalibration` JSON file (``VoidRecoveryCalibration.to_json``; the notebook's is
    made by ``helpers.synthetic.correlative_calibration.cached_calibration``). Raises ``OSError`` /
    ``ValueError`` naming the problem."""
    import json

    path = Path(path)
    if not path.is_file():
        raise OSError(f"recovery calibration {path} does not exist")
    try:
        cal = VoidRecoveryCalibration.from_json(path.read_text())
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path.name} is not a void-recovery calibration (VoidRecoveryCalibration.to_json): "
                         f"{err}") from err
    cal.leave_one_out()  # refuses fewer than 3 phantoms before any long work
    return cal


def recovery_for_files(
    calibration: VoidRecoveryCalibration,
    ct_analysis_path,
    volume_path=None,
    dataset=None,
    label: int | None = None,
    voxel_size_um: float | None = None,
) -> RecoveryEstimate:
    """:func:`estimate_recovery` for the particle of a ``ct-analyse`` output, as correlate_files picks it."""
    labels, grey, void_threshold, voxel = read_ct_analysis(
        ct_analysis_path, volume_path, dataset, voxel_size_um
    )
    envelope, voids, _ = found_void_mask(labels, grey, void_threshold, label)
    return estimate_recovery(calibration, voids, voxel, volume_cnr(grey, envelope, void_threshold))


def write_result(
    path,
    registration: Registration,
    associations: dict,
    inputs: dict,
    params: dict,
    corrected: CorrectedCoupling | None = None,
) -> Path:
    """Write the registration and associations to HDF5 (temporary name, renamed when complete).

    ``inputs``: {role: path} of the input files (their SHA-256 is stored); ``params``: the options;
    ``corrected``: the d coupling corrected for the CT's void-volume recovery (group ``coupling_corrected``).
    """
    import json
    import os
    import tempfile

    import h5py

    from helpers import __version__
    from helpers.provenance import file_sha256

    path = Path(path)
    if not path.parent.is_dir():
        raise OSError(f"output folder {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as h5:
            h5.attrs["program"] = f"nmc-workbook correlate {__version__}"
            h5.attrs["params_json"] = json.dumps(params, default=str)
            for role, p in inputs.items():
                h5.attrs[f"{role}_file"] = Path(p).name
                h5.attrs[f"{role}_sha256"] = file_sha256(p)
            g = h5.create_group("registration")
            g.attrs["angle_deg"] = registration.alignment.angle_deg
            g.attrs["shift_um"] = np.asarray(registration.alignment.shift_um)
            g.attrs["convention"] = "p_ct = R(angle) p_sxdm + shift; CT (x, y) = (col, row) * voxel, µm"
            g.attrs["ncc"] = registration.ncc
            g.attrs["residual_rel"] = registration.residual_rel
            ds = g.create_dataset("residual_map", data=registration.residual_map)
            ds.attrs["units"] = "fraction of the maximum SXDM intensity"
            ds.attrs["axes"] = "y, x (SXDM scan grid)"
            for name, a in associations.items():
                q = h5.create_group(f"association_{name}")
                for key in ("quantity", "n_blocks", "r", "p_value", "coupling", "confidence", "verdict"):
                    q.attrs[key] = getattr(a, key)
                q.attrs["r_ci"] = np.asarray(a.r_ci)
                q.attrs["coupling_ci"] = np.asarray(a.coupling_ci)
                q.attrs["coupling_units"] = (
                    "Δd/d per unit void fraction" if name == "d" else "deg per unit void fraction"
                )
                q["void_fraction"] = a.void_fraction
                q["values"] = a.values
                q["values"].attrs["units"] = "Δd/d" if name == "d" else "deg"
            if corrected is not None:
                c = h5.create_group("coupling_corrected")
                c.attrs["coupling"] = corrected.coupling
                c.attrs["coupling_ci"] = np.asarray(corrected.coupling_ci)
                c.attrs["recovery"] = corrected.recovery
                c.attrs["recovery_sigma"] = corrected.recovery_sigma
                c.attrs["coupling_units"] = "Δd/d per unit true void fraction"
            h5.attrs["complete"] = True
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


# ----------------------------------------------------------------------------------------------
# figures
# ----------------------------------------------------------------------------------------------
def plot_registration(axes, maps, registration: Registration) -> None:
    """SXDM intensity with the registered CT envelope outline, and the registration residual."""
    x, y, step = _grid(maps)
    extent = (x.min() - step / 2, x.max() + step / 2, y.min() - step / 2, y.max() + step / 2)
    intensity = np.nan_to_num(np.asarray(maps.intensity, float))
    axes[0].imshow(intensity / intensity.max(), origin="lower", extent=extent, cmap="magma")
    t = registration.thickness_on_sxdm
    axes[0].contour(x, y, t / t.max(), levels=[0.2, 0.6], colors=["c", "w"], linewidths=1)
    axes[0].set_title(f"SXDM intensity, CT outline (NCC {registration.ncc:.3f})", fontsize=9)
    lim = float(np.max(np.abs(registration.residual_map))) or 1.0
    im = axes[1].imshow(
        registration.residual_map, origin="lower", extent=extent, cmap="RdBu_r", vmin=-lim, vmax=lim
    )
    axes[1].set_title(f"residual (relative rms {registration.residual_rel:.3f})", fontsize=9)
    for ax in axes[:2]:
        ax.set_xlabel("x (µm)")
        ax.set_ylabel("y (µm)")
    axes[1].figure.colorbar(im, ax=axes[1], shrink=0.8)


def plot_association(ax, result: Association, design_coupling: float | None = None, label: str = "") -> None:
    """Block averages of the quantity against the projected void fraction, with the fitted coupling."""
    scale = 1e4 if result.quantity == "d" else 1.0
    ax.plot(result.void_fraction, result.values * scale, "o", ms=4, alpha=0.8, label=label or None)
    f = np.linspace(result.void_fraction.min(), result.void_fraction.max(), 2)
    q0, f0 = result.values.mean(), result.void_fraction.mean()
    if result.verdict == "association":
        ax.plot(f, (q0 + result.coupling * (f - f0)) * scale, "-", lw=1, color=ax.lines[-1].get_color())
    if design_coupling is not None and result.quantity == "d":
        ax.plot(f, (q0 + design_coupling * (f - f0)) * scale, "k--", lw=1)
    ax.set_xlabel("projected void fraction (CT)")
    ax.set_ylabel("Δd/d (1e-4, SXDM)" if result.quantity == "d" else "tilt deviation (deg, SXDM)")
