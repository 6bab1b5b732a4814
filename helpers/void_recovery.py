"""The correlative coupling's bias from the CT's void-volume recovery, and its truth-free correction.

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

This module may use :mod:`helpers.nanoct` results but no forward model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from helpers.correlate import FWHM_TO_SIGMA, Association, block_averages, found_void_mask, read_ct_analysis

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
    ft, fm = block_averages([f_t, f_m], valid, cols, rows, block_um)
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
