"""Internal voids kept only when their grey deficit is significant against this volume's own noise.

At the paper's CNR (≈ 2.3) a per-voxel test (grey below the mid-level of the particle and air) flags
noise: a voxel of a void-free particle falls below that level with probability Φ(−CNR/2) ≈ 12 %, and
clusters of such voxels pass any size filter when the noise is correlated over a few voxels. A void of
n voxels is visible only when the *mean* grey over a region of its size is significantly below the
particle's level, where "significantly" is set by the noise of an n-voxel mean in *this* volume.

:func:`ball_mean_sigma` measures that noise: the σ of the grey mean over a ball of radius r, taken over
the positions where the ball lies wholly inside a reference region of the same volume (the air around
the sample, or any region of constant material); no simulator σ or truth enters. It holds the noise
correlation as measured (for white noise σ_r = σ/√n; after Paganin + FBP it falls much more slowly).
It works slab by slab (z-slabs with a halo), so that a large volume is never held as floats.
:func:`air_noise` finds the reference region from the volume alone (:func:`air_region_of_slab`: the
lowest-grey phase, far from every particle) or takes a box the user names.

:func:`voids_by_significance` is a matched-filter (scale-space) detector: for each radius r, a voxel
of a particle's eroded envelope is a void centre when the particle's level minus the ball mean at
that voxel exceeds ``k_sigma`` · σ_r (one-sided false-alarm probability Φ(−k) per independent region;
k = 3.7 → 1e-4); the void *support* is the union over radii of the centres dilated by their ball
(a large ball that holds a small void is significant too, so the support is wider than the void), and
the void is the part of the support whose radius-1 ball mean is below the mid-grey of the particle's
level and the air level (the median grey of the reference region, which must then be the air).
The envelope (closed, hole-filled particle mask) is found as in
:func:`helpers.nanoct.voids.voids_from_particle_statistics`, independently of the voids. Every
particle is measured on its own crop (:func:`particle_void_crop`, padded by :func:`crop_pad` voxels so
that every ball about its envelope lies inside the crop): the same numbers in one process or in tasks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: one-sided Gaussian z for a false-alarm probability of 1e-4 per independent ball (a priori, not tuned)
DEFAULT_K_SIGMA = 3.7
#: ball radii (voxels) of the matched filter: 2–12 voxel diameters, 50–300 nm at 25 nm voxels
DEFAULT_RADII = (1, 2, 3, 4, 6)
#: a radius's σ is measured only where the ball fits at ≥ this many positions × its voxel count
#: (≈ this many independent balls for white noise: relative error of σ ≈ 1/√(2·50) = 10 %)
MIN_INDEPENDENT_BALLS = 50
#: automatic air region: voxels at least this far (voxels) from any particle voxel, so that edge
#: blur and phase-contrast fringes of the particles stay out of the noise measurement
AIR_MARGIN_VOXELS = 6
#: automatic air region: islands of the classification above the air's grey smaller than this (voxels)
#: are noise, counted as air (a 24-voxel ball; the particles are kept out by their labels)
AIR_FILL_VOXELS = 60_000
#: z-slab thickness (voxels) of the slab-wise noise measurement
SLAB_VOXELS = 32


def ball(radius: int) -> np.ndarray:
    """Boolean ball of ``radius`` voxels (scikit-image's: Euclidean, centre included), shape (2r+1)³."""
    from skimage.morphology import ball as skimage_ball

    if int(radius) < 0:
        raise ValueError(f"ball radius must be ≥ 0 voxels, got {radius}")
    return skimage_ball(int(radius)).astype(bool)


def ball_mean(volume: np.ndarray, radius: int) -> np.ndarray:
    """Mean grey over a ball of ``radius`` voxels about every voxel (FFT convolution, zeros outside;
    float32)."""
    from scipy.signal import fftconvolve

    kernel = ball(radius).astype(np.float64)
    kernel /= kernel.sum()
    return fftconvolve(np.asarray(volume, np.float64), kernel, mode="same").astype(np.float32)


@dataclass
class VolumeNoise:
    """σ of the ball-mean grey measured in a reference region (the air) of one volume.

    Attributes
    ----------
    sigma : {radius (voxels): σ of the grey mean over that ball (grey levels)}, the radii measured
    positions : {radius: ball positions wholly inside the region, over which σ was taken}
    air_grey : median grey of the region (its level; grey levels)
    region : how the region was chosen, in words (recorded in the output)
    region_voxels : voxels of the region
    k_sigma : significance factor of the test
    closing_radius : envelope closing radius (voxels)
    """

    sigma: dict
    positions: dict
    air_grey: float
    region: str
    region_voxels: int
    k_sigma: float = DEFAULT_K_SIGMA
    closing_radius: int = 2
    radii: tuple = field(init=False)

    def __post_init__(self):
        if not self.sigma:
            raise ValueError("no ball radius measured: the noise is unknown")
        if self.k_sigma <= 0:
            raise ValueError(f"k_sigma must be > 0, got {self.k_sigma}")
        self.radii = tuple(sorted(int(r) for r in self.sigma))


def inner_distance(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance (voxels) of every voxel of ``mask`` to the nearest voxel outside it, the
    array's outside counting as outside. ``inner_distance(m) > r`` is ``m`` eroded by :func:`ball` (r)
    (the same voxels as ``binary_erosion`` with that ball, checked for r = 1–7, at a fraction of its cost).
    """
    from scipy import ndimage as ndi

    padded = np.pad(np.asarray(mask, bool), 1)
    return ndi.distance_transform_edt(padded)[1:-1, 1:-1, 1:-1]


def dilate_by_ball(mask: np.ndarray, radius: int) -> np.ndarray:
    """``mask`` dilated by :func:`ball` (radius): voxels within ``radius`` of a voxel of ``mask``."""
    from scipy import ndimage as ndi

    mask = np.asarray(mask, bool)
    if not mask.any():
        return mask.copy()
    return ndi.distance_transform_edt(~mask) <= radius


def crop_pad(noise: VolumeNoise) -> int:
    """Voxels to pad a particle's box so that every ball about its envelope lies inside the crop."""
    return max(max(noise.radii), 1) + noise.closing_radius + 2


def _slab_sigma(volume, region_of_slab, radii, slab: int, what: str) -> tuple[dict, dict, float, int]:
    """σ of ball means, positions, median grey and voxels of the region, slab by slab."""
    nz = int(volume.shape[0])
    halo = max(radii)
    sums = {r: np.zeros(3) for r in radii}  # n, Σ(x − 128), Σ(x − 128)² per radius
    hist = np.zeros(256, np.int64)
    for z0 in range(0, nz, slab):
        z1 = min(z0 + slab, nz)
        h0, h1 = max(z0 - halo, 0), min(z1 + halo, nz)
        grey = np.asarray(volume[h0:h1])
        region = np.asarray(region_of_slab(h0, h1), bool)
        core = slice(z0 - h0, z1 - h0)
        levels = np.clip(np.rint(grey[core][region[core]]), 0, 255).astype(np.intp)  # 8-bit grey levels
        hist += np.bincount(levels, minlength=256)[:256]
        if not region[core].any():
            continue
        depth = inner_distance(region)[core]
        for r in radii:
            inside = depth > r
            if not inside.any():
                continue
            values = ball_mean(grey, r)[core][inside].astype(np.float64) - 128.0
            sums[r] += (values.size, values.sum(), (values**2).sum())
    n_region = int(hist.sum())
    sigma, positions = {}, {}
    for r in radii:
        n, s1, s2 = sums[r]
        n_ball = int(ball(r).sum())
        if n < MIN_INDEPENDENT_BALLS * n_ball:
            if sigma:  # the smaller balls fit: measure those only
                break
            raise ValueError(
                f"{what}: a ball of radius {r} voxels ({n_ball} voxels) fits at {int(n)} positions only "
                f"({n_region} voxels in the region), fewer than the {MIN_INDEPENDENT_BALLS * n_ball} "
                f"({MIN_INDEPENDENT_BALLS} × its voxels) needed for a stable σ of its mean"
            )
        sigma[int(r)] = float(np.sqrt(max(s2 / n - (s1 / n) ** 2, 0.0)))
        positions[int(r)] = int(n)
    cum = np.cumsum(hist)
    air_grey = float(np.searchsorted(cum, 0.5 * cum[-1])) if n_region else float("nan")
    return sigma, positions, air_grey, n_region


def ball_mean_sigma(volume: np.ndarray, region: np.ndarray, radii=DEFAULT_RADII,
                    slab: int = SLAB_VOXELS) -> dict[int, float]:
    """σ of the ``radius``-ball mean of ``volume`` over the positions where the ball is inside ``region``.

    ``region``: boolean (z, y, x) mask of one constant material of the same volume (e.g. the air).
    Radii whose ball fits at fewer than ``MIN_INDEPENDENT_BALLS`` × its voxels positions are left out
    (from the first such radius on); raises ValueError when not even the smallest fits.
    """
    region = np.asarray(region, bool)
    if region.shape != np.shape(volume):
        raise ValueError(f"region {region.shape} and volume {np.shape(volume)} must have the same shape")
    sigma, _, _, _ = _slab_sigma(volume, lambda a, b: region[a:b], tuple(radii), slab,
                                 "reference region too small; give a larger region (e.g. all the air "
                                 "around the sample)")
    return sigma


def parse_box(text: str, shape) -> tuple[slice, slice, slice]:
    """``"z0:z1,y0:y1,x0:x1"`` (voxels, Python slices, end excluded) as three slices inside ``shape``."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 3:
        raise ValueError(f"--air-region {text!r}: give three ranges z0:z1,y0:y1,x0:x1 (voxels)")
    box = []
    for axis, (part, n) in enumerate(zip(parts, shape, strict=True)):
        try:
            lo, hi = (int(v) for v in part.split(":"))
        except ValueError as err:
            raise ValueError(f"--air-region {text!r}: range {part!r} is not two integers a:b") from err
        if not 0 <= lo < hi <= n:
            raise ValueError(f"--air-region {text!r}: range {part!r} of axis {'zyx'[axis]} must satisfy "
                             f"0 ≤ a < b ≤ {n}")
        box.append(slice(lo, hi))
    return tuple(box)


def air_region_of_slab(volume, labels, max_grey: float, classify=None, margin: int = AIR_MARGIN_VOXELS,
                       smooth_vox: float = 1.5, fill_voxels: int = AIR_FILL_VOXELS):
    """A function ``(z0, z1) -> boolean mask`` of the automatic air region in rows ``z0:z1``.

    Air = voxels whose *classifying* grey (``classify``, e.g. the denoised volume; else the volume
    Gaussian-smoothed by ``smooth_vox`` voxels) is below ``max_grey`` (the lowest phase's upper
    threshold; 6-connected islands above it smaller than ``fill_voxels`` count as air), at least
    ``margin`` voxels from every particle voxel (``labels > 0``) and not in a
    locally constant patch (a zero-filled outside of the reconstructed disk). The raw grey is never
    used to select (that would truncate the noise being measured).
    """
    import cc3d
    from scipy import ndimage as ndi

    nz = int(volume.shape[0])
    halo = int(margin) + int(np.ceil(4 * smooth_vox)) + 1

    def region(z0, z1):
        h0, h1 = max(z0 - halo, 0), min(z1 + halo, nz)
        grey = np.asarray(volume[h0:h1])
        if classify is not None:
            smooth = np.asarray(classify[h0:h1], np.float32)
        else:
            smooth = ndi.gaussian_filter(grey.astype(np.float32), smooth_vox)
        near = np.asarray(labels[h0:h1]) > 0
        far = ndi.distance_transform_edt(~near) > margin if near.any() else np.ones(near.shape, bool)
        varies = (ndi.maximum_filter(grey, size=3) != ndi.minimum_filter(grey, size=3))
        varies = ndi.binary_dilation(varies, iterations=1)
        # islands above max_grey smaller than fill_voxels are the noise's own upper excursions: keep them
        # (dropping them would keep only the balls where the noise stayed low, σ biased low by ~10 %)
        above = np.ascontiguousarray(smooth >= max_grey)
        above = cc3d.dust(above, threshold=fill_voxels, connectivity=6, in_place=True)
        keep = ~above & far & varies
        return keep[z0 - h0 : z1 - h0]

    return region


def air_noise(volume, labels=None, *, max_grey: float | None = None, classify=None,
              air_region: str | None = None, radii=DEFAULT_RADII, k_sigma: float = DEFAULT_K_SIGMA,
              closing_radius: int = 2, margin: int = AIR_MARGIN_VOXELS,
              slab: int = SLAB_VOXELS) -> VolumeNoise:
    """The volume's own noise for :func:`voids_by_significance`, measured in its air, slab by slab.

    Either ``air_region`` (``"z0:z1,y0:y1,x0:x1"``, a box the user knows to be air) or the automatic
    region (:func:`air_region_of_slab` with ``labels``, ``max_grey``, ``classify``). Raises
    ``ValueError`` naming the problem and what to pass when the air is too small for a stable σ.
    """
    volume_shape = tuple(volume.shape)
    if air_region is not None:
        box = parse_box(air_region, volume_shape)

        def region(z0, z1):
            mask = np.zeros((z1 - z0,) + volume_shape[1:], bool)
            lo, hi = max(box[0].start, z0), min(box[0].stop, z1)
            if lo < hi:
                mask[lo - z0 : hi - z0, box[1], box[2]] = True
            return mask

        what = f"--air-region {air_region}"
        words = f"box z,y,x = {air_region} (given)"
    else:
        if labels is None or max_grey is None:
            raise ValueError("the automatic air region needs the particle labels and the air's upper grey")
        region = air_region_of_slab(volume, labels, max_grey, classify=classify, margin=margin)
        what = (f"no air found for the void significance test (grey below {max_grey:.1f} and ≥ {margin} "
                "voxels from every particle); pass --air-region z0:z1,y0:y1,x0:x1 with a box of air (or "
                "of one constant material) of this volume, or use --void-test threshold")
        words = (f"automatic: {'denoised' if classify is not None else 'smoothed'} grey < {max_grey:.1f} "
                 f"(lowest phase), ≥ {margin} voxels from every particle")
    sigma, positions, air_grey, n_region = _slab_sigma(volume, region, tuple(radii), slab, what)
    if not np.isfinite(air_grey):
        raise ValueError(what)
    return VolumeNoise(sigma=sigma, positions=positions, air_grey=air_grey, region=words,
                       region_voxels=n_region, k_sigma=k_sigma, closing_radius=closing_radius)


def particle_void_crop(grey: np.ndarray, mask: np.ndarray, noise: VolumeNoise):
    """Envelope, void mask and grey level of one particle from its padded crop.

    ``grey`` the crop of the (raw) volume, ``mask`` the particle's voxels in it (bool), padded by
    :func:`crop_pad`. Returns ``(envelope, void, level)`` (bool, bool, float; NaN when the envelope
    has no interior).
    """
    import fill_voids
    from scipy import ndimage as ndi

    closing = ndi.iterate_structure(ndi.generate_binary_structure(3, 1), max(noise.closing_radius, 1))
    mask = np.asarray(mask, bool)
    envelope = mask.copy()
    if noise.closing_radius > 0:  # "| mask": the closing's erosion eats voxels on the crop's border
        envelope |= ndi.binary_closing(mask, structure=closing)
    envelope = fill_voids.fill(np.ascontiguousarray(envelope), in_place=False)
    inner = ndi.binary_erosion(envelope)
    void = np.zeros_like(inner)
    if not inner.any():
        return envelope, void, float("nan")
    grey = np.asarray(grey)
    level = float(np.median(grey[inner]))
    depth = inner_distance(envelope)
    for r in noise.radii:
        centres = depth > r + 1
        if not centres.any():
            continue
        centres &= (level - ball_mean(grey, r)) >= noise.k_sigma * noise.sigma[r]
        if centres.any():
            void |= dilate_by_ball(centres, r) & inner
    void &= ball_mean(grey, 1) < 0.5 * (level + noise.air_grey)
    return envelope, void, level


def voids_by_significance(
    volume: np.ndarray,
    labels: np.ndarray,
    reference_region: np.ndarray | None = None,
    radii=DEFAULT_RADII,
    k_sigma: float = DEFAULT_K_SIGMA,
    closing_radius: int = 2,
    noise: VolumeNoise | None = None,
):
    """Voids of each labelled particle whose ball-mean deficit exceeds ``k_sigma`` σ of that ball's mean.

    ``volume`` grey (any dtype), ``labels`` particle labels of the same shape, and either
    ``reference_region`` (the air of the same volume: its noise, :func:`ball_mean_sigma`, and its median
    grey, the air level) or ``noise`` (e.g. from :func:`air_noise`). Returns a pandas.DataFrame
    (``label``, ``envelope_voxels``, ``particle_grey``, ``void_voxels``, ``void_fraction``), the boolean
    void mask (z, y, x) and ``{radius: σ_r}``.
    """
    import pandas as pd

    from helpers.nanoct.particles import bounding_boxes, padded_box

    if labels.shape != np.shape(volume):
        raise ValueError(f"labels {labels.shape} and volume {np.shape(volume)} must have the same shape")
    if k_sigma <= 0:
        raise ValueError(f"k_sigma must be > 0, got {k_sigma}")
    if noise is None:
        if reference_region is None:
            raise ValueError("give the reference region (the air) or the measured noise")
        region = np.asarray(reference_region, bool)
        sigma = ball_mean_sigma(volume, region, radii)
        noise = VolumeNoise(sigma=sigma, positions={}, air_grey=float(np.median(np.asarray(volume)[region])),
                            region="given mask", region_voxels=int(region.sum()), k_sigma=k_sigma,
                            closing_radius=closing_radius)
    pad = crop_pad(noise)
    void_all = np.zeros(labels.shape, bool)
    rows = []
    for lab, box in enumerate(bounding_boxes(labels), start=1):
        if box is None:
            continue
        crop = padded_box(box, labels.shape, pad)
        envelope, void, level = particle_void_crop(np.asarray(volume[crop]), labels[crop] == lab, noise)
        void_all[crop] |= void
        n_env = int(envelope.sum())
        rows.append(dict(label=lab, envelope_voxels=n_env, particle_grey=level, void_voxels=int(void.sum()),
                         void_fraction=float(void.sum()) / max(n_env, 1)))
    return pd.DataFrame(rows), void_all, dict(noise.sigma)
