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

The coupling's bias from the CT's void-volume recovery, and its truth-free correction, are in
:mod:`helpers.void_recovery`; the figures in :mod:`helpers.correlate_figures`.

This module may use :mod:`helpers.sxdm` and :mod:`helpers.nanoct` results but no forward model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

if TYPE_CHECKING:  # for the annotation only: void_recovery imports this module
    from helpers.void_recovery import CorrectedCoupling

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


def scan_grid(maps) -> tuple[np.ndarray, np.ndarray, float]:
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

    x, y, step = scan_grid(maps)
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


def block_averages(
    values: list[np.ndarray],
    valid: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    block_um: float,
    min_share: float = 0.5,
) -> list[np.ndarray]:
    """Means of each of ``values`` over square blocks of ``block_um`` (µm) on the grid ``x``, ``y`` (µm),
    using ``valid`` points only; blocks with fewer than ``min_share`` of their points valid are dropped."""
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

    x, y, _ = scan_grid(maps)
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
    f_b, q_b = block_averages([np.nan_to_num(fraction), np.nan_to_num(values)], valid, x, y, block_um)
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
    def percentile_bootstrap(statistic):
        return stats.bootstrap((f_b, q_b), statistic, paired=True, vectorized=True, n_resamples=n_resamples,
                               confidence_level=confidence, method="percentile", **rng)

    boot_r = percentile_bootstrap(pearson)  # r first, then κ: the same draws from rng as before
    boot_k = percentile_bootstrap(coupling)
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
    _, _, step = scan_grid(maps)
    labels, grey, void_threshold, voxel = read_ct_analysis(
        ct_analysis_path, volume_path, dataset, voxel_size_um
    )
    ct = ct_projection(labels, grey, void_threshold, voxel, label=label, axis=axis)
    fw = step if footprint_fwhm_um is None else footprint_fwhm_um
    reg = register(maps, ct, initial, fw, min_ncc=min_ncc)
    out = {q: association(maps, ct, reg.alignment, q, block_um, fw) for q in ("d", "tilt")}
    return reg, out


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
