"""Nano-CT grey phases: the three-phase (air, glue, NMC) histogram fit and the NMC threshold.

:func:`fit_three_phases` fits three Gaussians to the grey-value histogram of the 8-bit volume (the
paper's OriginPro multi-peak fit) and returns the NMC threshold where the glue and NMC components,
weighted by their phase fractions, cross, with its 1-sigma uncertainty from the fit covariance (delta
method); :func:`nmc_threshold_auto` also accepts two-phase samples and says which phases it found;
:func:`nmc_mask` thresholds slab-wise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PHASE_NAMES = ("air", "glue", "NMC")


# --------------------------------------------------------------------------------------------
# 1. three-phase histogram fit
# --------------------------------------------------------------------------------------------
@dataclass
class PhaseFit:
    """Three-Gaussian fit of an 8-bit grey-value histogram (grey values in 0..255).

    Attributes
    ----------
    means, sigmas, weights : (3,) arrays, phases ordered air, glue, NMC (weights sum to 1)
    threshold_nmc, threshold_nmc_sigma : glue/NMC decision grey value and its 1-sigma uncertainty
    threshold_air, threshold_air_sigma : air/glue decision grey value and its 1-sigma uncertainty
    bin_centres, counts : the fitted histogram (``counts`` per integer grey value)
    separations : Ashman's D of the (air, glue) and (glue, NMC) pairs
    """

    means: np.ndarray
    sigmas: np.ndarray
    weights: np.ndarray
    threshold_nmc: float
    threshold_nmc_sigma: float
    threshold_air: float
    threshold_air_sigma: float
    bin_centres: np.ndarray
    counts: np.ndarray
    separations: np.ndarray
    params_cov: np.ndarray = field(repr=False)

    @property
    def void_threshold(self) -> float:
        """Mid-grey between the air and NMC means: the 50 % level of an air/NMC edge, used for voids.

        The NMC threshold (glue/NMC crossing) lies above it and would enlarge every void by a few
        tenths of a voxel (measured: void fraction +0.008 on a 3 %-void particle).
        """
        return float(0.5 * (self.means[0] + self.means[2]))

    @property
    def threshold_nmc_midpoint(self) -> float:
        """Mid-grey between the glue and NMC means: the 50 % level of a blurred glue/NMC edge.

        Used after denoising: the smoothed edge (partial-volume) voxels then fill the glue component,
        which grows wide and heavy (σ_glue ≈ 2 σ_NMC), and the weighted crossing moves toward NMC
        (measured on the phantom at CNR 2.3 after TV: NMC volume −18 % at the crossing, +4 % here,
        best global threshold within 1 grey level of this one). Without denoising at CNR 12 both
        rules agree within 2 grey levels.
        """
        return float(0.5 * (self.means[1] + self.means[2]))

    def component(self, index: int, grey: np.ndarray) -> np.ndarray:
        """Counts per grey level of component ``index`` (same scale as :attr:`counts`)."""
        return self.counts.sum() * self.weights[index] * _gauss(grey, self.means[index], self.sigmas[index])

    def model(self, grey: np.ndarray) -> np.ndarray:
        """Sum of the three fitted components (counts per grey level)."""
        return sum(self.component(i, grey) for i in range(3))


def _gauss(x, mean, sigma):
    return np.exp(-0.5 * ((x - mean) / sigma) ** 2) / (np.sqrt(2 * np.pi) * sigma)


def _mixture(x, *p):
    total = 0.0
    for i in range(3):
        amp, mean, sigma = p[3 * i : 3 * i + 3]
        total = total + amp * _gauss(x, mean, sigma)
    return total


def _crossing(p, lower: int) -> float:
    """Grey value between components ``lower`` and ``lower+1`` where their weighted densities are equal."""
    a1, m1, s1 = p[3 * lower : 3 * lower + 3]
    a2, m2, s2 = p[3 * lower + 3 : 3 * lower + 6]
    # a1 N(x; m1, s1) = a2 N(x; m2, s2)  ->  quadratic in x
    qa = 1 / (2 * s2**2) - 1 / (2 * s1**2)
    qb = m1 / s1**2 - m2 / s2**2
    qc = m2**2 / (2 * s2**2) - m1**2 / (2 * s1**2) + np.log((a1 * s2) / (a2 * s1))
    if abs(qa) < 1e-12:
        roots = np.array([-qc / qb])
    else:
        disc = qb**2 - 4 * qa * qc
        if disc < 0:  # one component dominates everywhere: fall back to the equal-distance point
            return float((m1 * s2 + m2 * s1) / (s1 + s2))
        roots = (-qb + np.array([-1.0, 1.0]) * np.sqrt(disc)) / (2 * qa)
    between = roots[(roots >= min(m1, m2)) & (roots <= max(m1, m2))]
    if between.size == 0:
        return float((m1 * s2 + m2 * s1) / (s1 + s2))
    return float(between[0])


def _start_values(levels, counts, total):
    """Start values (amplitude, mean, sigma) × 3: the three most prominent peaks of the smoothed
    histogram when there are three (robust to a small NMC fraction), else a 3-component mixture."""
    from scipy.ndimage import gaussian_filter1d
    from scipy.signal import find_peaks, peak_widths
    from sklearn.mixture import GaussianMixture

    smooth = gaussian_filter1d(counts, 1.5)
    peaks, props = find_peaks(smooth, prominence=smooth.max() * 2e-3)
    if peaks.size >= 3:
        best = np.sort(peaks[np.argsort(props["prominences"])[-3:]])
        widths = peak_widths(smooth, best, rel_height=0.5)[0]
        sigmas = np.maximum(widths / 2.355, 0.7)
        return [v for i, pk in enumerate(best)
                for v in (smooth[pk] * np.sqrt(2 * np.pi) * sigmas[i], levels[pk], sigmas[i])]
    reps = np.round(counts / total * 20000).astype(int)
    sample = np.repeat(levels, reps)[:, None]
    if np.unique(sample).size < 3:
        return None
    gmm = GaussianMixture(3, random_state=0, reg_covar=0.25, n_init=3).fit(sample)
    p0 = []
    for i in np.argsort(gmm.means_.ravel()):
        sigma = max(np.sqrt(gmm.covariances_.ravel()[i]), 0.7)
        p0 += [gmm.weights_[i] * total, gmm.means_.ravel()[i], sigma]
    return p0


def grey_histogram(volume, slab: int = 64) -> np.ndarray:
    """Counts of each grey value 0..255 of an 8-bit volume, read slab-wise (memory: one slab).

    ``np.bincount`` casts its input to int64: it is given 2^24 voxels at a time (128 MB), not a whole
    slab (64 × 2560² voxels would be 3.4 GB of int64).
    """
    from helpers.nanoct.volume_io import iter_slabs, validate_volume

    validate_volume(volume, "volume")
    counts = np.zeros(256, dtype=np.int64)
    step = 1 << 24
    for _, block in iter_slabs(volume, slab):
        flat = np.asarray(block).ravel()
        for start in range(0, flat.size, step):
            counts += np.bincount(flat[start : start + step], minlength=256)
    return counts


def fit_three_phases(
    volume_or_counts,
    min_weight: float = 0.005,
    min_separation: float = 2.0,
    exclude_saturated: bool = True,
) -> PhaseFit:
    """Fit air, glue and NMC Gaussians to the grey histogram; NMC threshold with uncertainty.

    Parameters
    ----------
    volume_or_counts : 3-D uint8 volume (read slab-wise) or a (256,) histogram of counts
    min_weight : smallest phase fraction accepted as a phase (default 0.5 % of the voxels)
    min_separation : smallest Ashman's D = √2 |μ₁−μ₂| / √(σ₁²+σ₂²) between neighbouring phases;
        D > 2 is the condition for two equal-width Gaussians to make two peaks (a dip between them);
        a single Gaussian split by the fit into two gives D ≈ 1.3
    exclude_saturated : leave grey values 0 and 255 out of the fit (clipped voxels pile up there)

    Returns
    -------
    PhaseFit

    Raises
    ------
    ValueError
        when the histogram does not hold three resolved phases; the message says which check failed
        and suggests a manual threshold (``segment_particles(volume, threshold=...)`` or
        ``nmc-workbook ct-analyse --threshold``).
    """
    from scipy.optimize import curve_fit

    counts = np.asarray(volume_or_counts)
    if not (counts.ndim == 1 and counts.size == 256):
        counts = grey_histogram(volume_or_counts)
    counts = counts.astype(np.float64)
    grey = np.arange(256, dtype=np.float64)
    use = np.ones(256, bool)
    if exclude_saturated:
        use[[0, 255]] = False
    total = counts[use].sum()
    advice = (
        "; this volume does not show the three grey phases (air, glue, NMC) the automatic threshold "
        "needs: denoise it first when the peaks are broad (segment_particles(volume, denoise='tv'), "
        "`nmc-workbook ct-analyse --denoise tv`) or give a manual NMC threshold "
        "(segment_particles(volume, threshold=...), `nmc-workbook ct-analyse --threshold T`)"
    )
    if total < 100 or np.count_nonzero(counts[use]) < 6:
        occupied = np.count_nonzero(counts[use])
        raise ValueError(f"histogram has {int(total)} voxels over {occupied} grey levels{advice}")

    levels = grey[use]
    p0 = _start_values(levels, counts[use], total)
    if p0 is None:
        raise ValueError(f"histogram has fewer than three occupied grey levels{advice}")
    sigma_counts = np.sqrt(np.maximum(counts[use], 1.0))  # Poisson errors per bin
    lower = [0, -10, 0.3] * 3
    upper = [np.inf, 265, 200] * 3
    try:
        params, cov = curve_fit(
            _mixture, levels, counts[use], p0=p0, sigma=sigma_counts, absolute_sigma=True,
            bounds=(lower, upper), maxfev=20000,
        )
    except RuntimeError as err:
        raise ValueError(f"three-Gaussian fit of the histogram did not converge ({err}){advice}") from err
    triples = np.array(params).reshape(3, 3)
    order = np.argsort(triples[:, 1])
    triples = triples[order]
    params = triples.ravel()
    idx = np.concatenate([np.arange(3 * i, 3 * i + 3) for i in order])
    cov = cov[np.ix_(idx, idx)]
    weights = triples[:, 0] / triples[:, 0].sum()
    means, sigmas = triples[:, 1], triples[:, 2]
    separations = np.array(
        [np.sqrt(2) * abs(means[i + 1] - means[i]) / np.hypot(sigmas[i], sigmas[i + 1]) for i in range(2)]
    )
    if weights.min() < min_weight:
        raise ValueError(
            f"phase fractions {np.round(weights, 4).tolist()} (air, glue, NMC): one is below "
            f"min_weight={min_weight}{advice}"
        )
    if separations.min() < min_separation:
        raise ValueError(
            f"neighbouring phases are not resolved: Ashman's D = {np.round(separations, 2).tolist()} "
            f"(air/glue, glue/NMC) with means {np.round(means, 1).tolist()}, below "
            f"min_separation={min_separation} (lower it only if you see the peaks){advice}"
        )

    def thresholds(p):
        return np.array([_crossing(p, 0), _crossing(p, 1)])

    t0 = thresholds(params)
    jac = np.zeros((2, 9))
    for k in range(9):
        step = 1e-5 * max(abs(params[k]), 1.0)
        shifted = params.copy()
        shifted[k] += step
        jac[:, k] = (thresholds(shifted) - t0) / step
    t_cov = jac @ cov @ jac.T
    t_sigma = np.sqrt(np.clip(np.diag(t_cov), 0, None))
    return PhaseFit(
        means=means, sigmas=sigmas, weights=weights,
        threshold_nmc=float(t0[1]), threshold_nmc_sigma=float(t_sigma[1]),
        threshold_air=float(t0[0]), threshold_air_sigma=float(t_sigma[0]),
        bin_centres=grey, counts=counts, separations=separations, params_cov=cov,
    )


@dataclass
class NmcThreshold:
    """Automatic NMC threshold of :func:`nmc_threshold_auto`, with the phases it found.

    ``phases``: names of the resolved grey phases, darkest first (``("air", "glue", "NMC")``, or
    ``("air and/or glue", "NMC")`` when only two are resolved); ``means``, ``sigmas``, ``weights``
    per phase (for NMC at two grey levels, the moments of its two components); ``threshold``: the
    mid-grey between NMC and the phase below it (the 50 % level of a blurred edge);
    ``threshold_crossing``: where the fitted densities of everything below NMC and of NMC are equal
    (the fitted mixture's fewest misclassified voxels); ``separation``: Ashman's D between NMC and
    the phase below it; ``fit``: the three-phase :class:`PhaseFit` when air, glue and NMC were
    resolved, else ``None``; ``note``: what was found, in words.
    """

    phases: tuple[str, ...]
    means: np.ndarray
    sigmas: np.ndarray
    weights: np.ndarray
    threshold: float
    separation: float
    fit: PhaseFit | None
    note: str
    threshold_crossing: float = float("nan")


def _fit_two_phases(counts: np.ndarray):
    """Two-Gaussian weighted least-squares fit of a (256,) histogram (grey 1..254); (a, m, s) × 2."""
    from scipy.optimize import curve_fit
    from sklearn.mixture import GaussianMixture

    grey = np.arange(1, 255, dtype=np.float64)
    c = counts[1:255].astype(np.float64)
    total = c.sum()
    sample = np.repeat(grey, np.round(c / total * 20000).astype(int))[:, None]
    gmm = GaussianMixture(2, random_state=0, reg_covar=0.25, n_init=3).fit(sample)
    p0 = []
    for i in np.argsort(gmm.means_.ravel()):
        p0 += [gmm.weights_[i] * total, gmm.means_.ravel()[i], max(np.sqrt(gmm.covariances_.ravel()[i]), 0.7)]

    def two(x, *p):
        return p[0] * _gauss(x, p[1], p[2]) + p[3] * _gauss(x, p[4], p[5])

    params, _ = curve_fit(two, grey, c, p0=p0, sigma=np.sqrt(np.maximum(c, 1.0)), absolute_sigma=True,
                          bounds=([0, -10, 0.3] * 2, [np.inf, 265, 200] * 2), maxfev=20000)
    triples = np.array(params).reshape(2, 3)
    return triples[np.argsort(triples[:, 1])]


def nmc_threshold_auto(
    volume_or_counts, min_separation: float = 2.0, min_weight: float = 0.005
) -> NmcThreshold:
    """NMC threshold from the grey histogram whether two or three phases are resolved.

    Tries the three-phase fit (:func:`fit_three_phases`); when air and glue are not resolved from each
    other (merged, or one of them absent) but NMC is, a two-Gaussian fit (background, NMC) gives the
    threshold. Refuses (``ValueError``, with what to try) only when NMC itself is not separable:
    Ashman's D between NMC and the phase below it under ``min_separation``, or NMC under
    ``min_weight`` of the voxels. The threshold is the mid-grey of NMC and the phase below it.

    Three components are read as air, glue and NMC only when the middle one lies closer to air than
    to NMC (:data:`MAX_GLUE_CONTRAST`); otherwise the two upper ones are NMC at two grey levels (a
    low-frequency shading, measured on 4-distance CTF reconstructions: NMC 150–175 grey along z) and
    the lowest one the background. Read as air/glue/NMC, such a volume loses half its NMC.
    """
    counts = np.asarray(volume_or_counts)
    if not (counts.ndim == 1 and counts.size == 256):
        counts = grey_histogram(volume_or_counts)
    occupied = np.count_nonzero(counts[1:255])
    if occupied < 3:
        raise ValueError(
            f"the volume holds {occupied} grey level(s) between 1 and 254: it is empty or all one grey "
            "(check the 8-bit window of the reconstruction, or that the right dataset was read)"
        )
    try:
        fit = fit_three_phases(counts, min_weight=min_weight, min_separation=min_separation)
    except ValueError:
        fit = None
    if fit is not None and _middle_is_glue(fit.means):
        return NmcThreshold(
            phases=PHASE_NAMES, means=fit.means, sigmas=fit.sigmas, weights=fit.weights,
            threshold=fit.threshold_nmc_midpoint, separation=float(fit.separations[1]), fit=fit,
            note="three phases resolved: air, glue, NMC",
            threshold_crossing=_group_crossing(fit.means, fit.sigmas, fit.weights, n_below=2),
        )
    if fit is not None:  # the middle component lies closer to NMC than to air: NMC at two grey levels
        return _nmc_at_two_levels(fit)
    try:
        triples = _fit_two_phases(counts)
    except RuntimeError as err:
        raise ValueError(
            f"no two-phase fit of the histogram converged ({err}): give a manual threshold"
        ) from err
    weights = triples[:, 0] / triples[:, 0].sum()
    means, sigmas = triples[:, 1], triples[:, 2]
    d = float(np.sqrt(2) * abs(means[1] - means[0]) / np.hypot(sigmas[0], sigmas[1]))
    if d < min_separation or weights[1] < min_weight:
        raise ValueError(
            f"NMC is not separable from the rest: two-Gaussian fit means {np.round(means, 1).tolist()}, "
            f"σ {np.round(sigmas, 1).tolist()}, weights {np.round(weights, 3).tolist()}, Ashman's D {d:.2f} "
            f"< {min_separation}; denoise first (segment_particles(volume, denoise='nlm'), "
            "`nmc-workbook ct-analyse --denoise nlm`) or give a manual threshold (--threshold T)"
        )
    return NmcThreshold(
        phases=("air and/or glue", "NMC"), means=means, sigmas=sigmas, weights=weights,
        threshold=float(0.5 * (means[0] + means[1])), separation=d, fit=None,
        note="two phases resolved: NMC and one background (air and glue merged, or only one of them)",
        threshold_crossing=_crossing(triples.ravel(), 0),
    )


#: Largest (glue − air) / (NMC − air) grey contrast a binder can have. A polymer binder with carbon
#: black is far less dense than NMC: δ_glue / δ_NMC = 0.40 at 29.6 keV (PVDF : carbon black 1 : 1,
#: 1.78 g/cm³, against NMC-622 at 4.7 g/cm³; xrayutilities), and a reconstruction is linear in δ. A
#: middle component closer to NMC than to air (ratio > 0.5) is not glue.
MAX_GLUE_CONTRAST = 0.5


def _middle_is_glue(means) -> bool:
    """Whether the middle of three fitted components lies closer to the lowest (air) than to NMC."""
    return bool((means[1] - means[0]) / (means[2] - means[0]) <= MAX_GLUE_CONTRAST)


def _group_crossing(means, sigmas, weights, n_below: int) -> float:
    """Grey value between the highest component below NMC and NMC's lowest where the summed weighted
    densities of the ``n_below`` lowest components and of the others are equal (the fewest
    misclassified voxels under the fitted mixture); the mid-grey of those two means if they never cross."""
    from scipy.optimize import brentq

    means, sigmas, weights = (np.asarray(a, float) for a in (means, sigmas, weights))

    def excess(x):
        dens = weights * _gauss(x, means, sigmas)
        return dens[:n_below].sum() - dens[n_below:].sum()

    lo, hi = means[n_below - 1], means[n_below]
    if excess(lo) > 0 > excess(hi):
        return float(brentq(excess, lo, hi, xtol=1e-3))
    return float(0.5 * (lo + hi))


def _nmc_at_two_levels(fit: PhaseFit) -> NmcThreshold:
    """Three fitted components whose middle one is not glue (:data:`MAX_GLUE_CONTRAST`): the two upper
    ones are NMC at two grey levels (a low-frequency shading of the reconstruction, e.g. darker near
    the ends of the field of view), the lowest one air and glue together. NMC is reported by the
    moments of its two components; the mid-grey threshold uses their mean."""
    w = fit.weights[1:] / fit.weights[1:].sum()
    nmc_mean = float(np.dot(w, fit.means[1:]))
    nmc_sigma = float(np.sqrt(np.dot(w, fit.sigmas[1:] ** 2 + (fit.means[1:] - nmc_mean) ** 2)))
    means = np.array([fit.means[0], nmc_mean])
    sigmas = np.array([fit.sigmas[0], nmc_sigma])
    weights = np.array([fit.weights[0], fit.weights[1:].sum()])
    ratio = (fit.means[1] - fit.means[0]) / (fit.means[2] - fit.means[0])
    return NmcThreshold(
        phases=("air and/or glue", "NMC"), means=means, sigmas=sigmas, weights=weights,
        threshold=float(0.5 * (means[0] + means[1])),
        separation=float(np.sqrt(2) * (means[1] - means[0]) / np.hypot(*sigmas)), fit=None,
        note=(f"two phases: NMC at two grey levels ({fit.means[1]:.0f} and {fit.means[2]:.0f}; the middle "
              f"component sits at {ratio:.2f} of the way from the lowest to NMC, too close to NMC for a "
              "binder: a low-frequency shading of the volume) above one background (air and glue)"),
        threshold_crossing=_group_crossing(fit.means, fit.sigmas, fit.weights, n_below=1),
    )


def nmc_fraction_change(counts: np.ndarray, threshold: float, shift: float) -> tuple[float, float]:
    """Relative change of the NMC voxel count (grey > threshold) when the threshold moves by −/+ ``shift``.

    A systematic-uncertainty probe from the histogram alone (no pass over the volume).
    """
    counts = np.asarray(counts, float)
    grey = np.arange(counts.size)

    def above(t):
        return counts[grey > t].sum()

    base = above(threshold)
    if base == 0:
        raise ValueError(f"no voxel above threshold {threshold}")
    return above(threshold - shift) / base - 1.0, above(threshold + shift) / base - 1.0


def mask_iou_by_threshold(volume, reference_mask: np.ndarray, slab: int = 64):
    """IoU of ``volume > t`` with a reference mask for every integer t = 0..254, from two histograms.

    Returns ``(thresholds, iou)``; the arg-max is the best global threshold the reference allows,
    against which a fitted threshold's systematic error is read.
    """
    from helpers.nanoct.volume_io import validate_volume

    validate_volume(volume, "volume")
    if tuple(reference_mask.shape) != tuple(volume.shape):
        raise ValueError(f"reference mask {reference_mask.shape} and volume {volume.shape} differ")
    inside = np.zeros(256, np.int64)
    outside = np.zeros(256, np.int64)
    for z0 in range(0, volume.shape[0], slab):
        grey = np.asarray(volume[z0 : z0 + slab]).ravel()
        ref = np.asarray(reference_mask[z0 : z0 + slab]).ravel().astype(bool)
        inside += np.bincount(grey[ref], minlength=256)
        outside += np.bincount(grey[~ref], minlength=256)
    thresholds = np.arange(255)
    tp = inside.sum() - np.cumsum(inside)[:255]  # grey > t inside the reference
    fp = outside.sum() - np.cumsum(outside)[:255]
    fn = inside.sum() - tp
    return thresholds, tp / np.maximum(tp + fp + fn, 1)


# --------------------------------------------------------------------------------------------
# 2. NMC mask and connected clusters
# --------------------------------------------------------------------------------------------
def nmc_mask(volume, threshold: float, slab: int = 64, out=None) -> np.ndarray:
    """Boolean mask ``volume > threshold`` computed slab-wise (memory: the mask + one slab).

    ``out`` may be a preallocated bool array, e.g. a ``numpy.memmap`` on disk for volumes beyond RAM.
    """
    from helpers.nanoct.volume_io import iter_slabs, validate_volume

    validate_volume(volume, "volume")
    mask = np.empty(volume.shape, dtype=bool) if out is None else out
    for z0, block in iter_slabs(volume, slab):
        mask[z0 : z0 + block.shape[0]] = np.asarray(block) > threshold
    return mask


