"""Internal voids of segmented particles: fraction, count, sizes, radial clustering, resolvable share.

Definitions (WORKBOOK §4): a particle's voids are the background voxels enclosed by its solid NMC
voxels (holes filled with ``fill_voids``; cavities open to the surface are not voids); void fraction
= void voxels / voxels of the filled particle; void size = local thickness (``localthickness``, the
radius of the largest inscribed ball that contains the voxel) reported as a **diameter** 2·LT. One
void's diameter is its largest inscribed-ball diameter (max 2·LT over the void). Measured bias of
2·max LT on voxelised balls of radius r (voxel centres within r): +5 % at r = 3, +2 % at r = 5,
+0.5 % at r = 10, so sizes below ~3 voxels (75 nm at 25 nm voxels) carry a few % bias.

Radial clustering: ``radial_index`` = mean distance of void voxels from the particle's centroid
divided by the same mean over all voxels of the filled particle; 1 for voids spread uniformly, < 1 for
voids clustered in the middle (the paper's Fig. 6B particle), > 1 for voids near the surface.

The resolvable share at a resolution ``d_min`` is the share of void volume whose local-thickness
diameter is ≥ ``d_min`` (paper: 65–90 % of the void volume is ≥ 50 nm).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def local_thickness_diameter(mask: np.ndarray) -> np.ndarray:
    """Per-voxel local thickness of ``mask`` as a diameter (voxels), 0 outside the mask.

    Uses ``localthickness`` (pip: localthickness); falls back to ``porespy.filters.local_thickness``
    (integer radii; porespy 3.2 returns r for a voxelised ball of radius r) when it is not installed.
    """
    mask = np.asarray(mask, bool)
    if not mask.any():
        return np.zeros(mask.shape, np.float32)
    padded = np.pad(mask, 1)
    try:
        import localthickness
    except ImportError:
        try:
            import porespy
        except ImportError as err:
            raise ImportError(
                "void sizes need `localthickness` or `porespy`: pip install localthickness"
            ) from err
        radius = porespy.filters.local_thickness(padded)
    else:
        radius = localthickness.local_thickness(padded)
    diameter = 2.0 * np.asarray(radius, np.float32)[1:-1, 1:-1, 1:-1]
    diameter[~mask] = 0
    return diameter


@dataclass
class ParticleVoids:
    """Voids of one particle (lengths in voxels; multiply by the voxel size).

    Attributes
    ----------
    filled_voxels, void_voxels : voxel counts of the filled particle and of its voids
    void_fraction : void_voxels / filled_voxels
    n_voids : number of voids (26-connected enclosed background components: voids touching at an
        edge or corner count as one cluster, the phantom's truth convention)
    void_volumes : (n_voids,) voxels of each void
    void_diameters : (n_voids,) largest inscribed-ball diameter of each void (2·max LT)
    void_radial : (n_voids,) distance of each void's centroid from the particle centroid / r_eq
    radial_index : mean void-voxel distance from the centroid / same mean over the filled particle
    lt_diameters : local-thickness diameter of every void voxel (volume-weighted size distribution)
    void_mask, filled_mask : boolean crops
    """

    filled_voxels: int
    void_voxels: int
    void_fraction: float
    n_voids: int
    void_volumes: np.ndarray
    void_diameters: np.ndarray
    void_radial: np.ndarray
    radial_index: float
    lt_diameters: np.ndarray
    void_mask: np.ndarray
    filled_mask: np.ndarray

    def median_diameter(self) -> float:
        """Volume-weighted median void diameter (median local thickness over void voxels); NaN if none."""
        return float(np.median(self.lt_diameters)) if self.lt_diameters.size else float("nan")

    def resolvable_share(self, d_min_voxels: float) -> float:
        """Share of the void volume with local-thickness diameter ≥ ``d_min_voxels``; NaN if no voids."""
        return resolvable_share(self.lt_diameters, d_min_voxels)

    def resolvable_share_eq(self, d_min_voxels: float) -> float:
        """Share of the void volume in voids whose volume-equivalent diameter is ≥ ``d_min_voxels``.

        Per void rather than per voxel: at 25 nm voxels and d_min = 50 nm, a void needs ≥ 5 voxels
        (d_eq = 53 nm; 4 voxels give 49.6 nm). The per-voxel local thickness cannot make this cut
        there: any voxel of any void has 2·LT ≥ 2 voxels (a lone voxel's ball has radius 1).
        """
        if self.n_voids == 0:
            return float("nan")
        d_eq = (6 * self.void_volumes / np.pi) ** (1 / 3)
        return float(self.void_volumes[d_eq >= d_min_voxels].sum() / self.void_volumes.sum())


def resolvable_share(lt_diameters: np.ndarray, d_min: float) -> float:
    """Share of void voxels whose local-thickness diameter is ≥ ``d_min`` (same unit); NaN if empty."""
    lt_diameters = np.asarray(lt_diameters)
    if lt_diameters.size == 0:
        return float("nan")
    return float(np.mean(lt_diameters >= d_min))


def particle_voids(solid: np.ndarray, min_void_voxels: int = 2, with_sizes: bool = True) -> ParticleVoids:
    """Voids of one particle given its solid voxels (a boolean crop holding one particle).

    Enclosed background components smaller than ``min_void_voxels`` are counted as solid: isolated
    single dark voxels are reconstruction noise (with phases ≥ 3 σ apart, a noise voxel below the
    threshold has probability ~1e-3, two adjacent ones ~1e-6), and 1 voxel is below any resolution.
    Raises ``ValueError`` for an empty mask. A single voxel, or any particle without enclosed
    background, has void fraction 0 and no voids.
    """
    import cc3d
    import fill_voids
    from scipy import ndimage as ndi

    solid = np.asarray(solid, bool)
    if solid.ndim != 3:
        raise ValueError(f"particle mask must be 3-D, got shape {solid.shape}")
    if not solid.any():
        raise ValueError(f"particle mask of shape {solid.shape} is empty: nothing to measure")
    filled = fill_voids.fill(np.ascontiguousarray(solid), in_place=False)
    void = filled & ~solid
    if min_void_voxels > 1 and void.any():
        void = cc3d.dust(void, threshold=min_void_voxels, connectivity=26, binary_image=True).astype(bool)
    void_labels, n_voids = cc3d.connected_components(void, connectivity=26, return_N=True)
    n_filled, n_void = int(filled.sum()), int(void.sum())
    centre = np.array(ndi.center_of_mass(filled))
    r_eq = (3 * n_filled / (4 * np.pi)) ** (1 / 3)
    if n_voids:
        index = np.arange(1, n_voids + 1)
        volumes = ndi.sum_labels(void, void_labels, index).astype(np.int64)
        centroids = np.array(ndi.center_of_mass(void, void_labels, index)).reshape(-1, 3)
        radial = np.linalg.norm(centroids - centre, axis=1) / r_eq
        coords_v = np.argwhere(void)
        coords_f = np.argwhere(filled)
        mean_void_r = np.linalg.norm(coords_v - centre, axis=1).mean()
        radial_index = float(mean_void_r / np.linalg.norm(coords_f - centre, axis=1).mean())
    else:
        volumes = np.zeros(0, np.int64)
        radial = np.zeros(0)
        radial_index = float("nan")
    if with_sizes and n_voids:
        lt = local_thickness_diameter(void)
        diameters = ndi.maximum(lt, void_labels, np.arange(1, n_voids + 1))
        lt_voxels = lt[void]
    else:
        diameters = np.full(n_voids, np.nan)
        lt_voxels = np.zeros(0, np.float32)
    return ParticleVoids(
        filled_voxels=n_filled, void_voxels=n_void, void_fraction=n_void / n_filled, n_voids=int(n_voids),
        void_volumes=volumes, void_diameters=np.asarray(diameters, float), void_radial=radial,
        radial_index=radial_index, lt_diameters=lt_voxels, void_mask=void, filled_mask=filled,
    )


def analyse_voids(
    volume,
    labels: np.ndarray,
    threshold: float,
    voxel_size_um: float,
    resolution_um: float = 0.05,
    min_void_voxels: int = 2,
    boxes=None,
    with_solidity: bool = True,
    significance=None,
):
    """Void table of every particle of a segmentation.

    Parameters
    ----------
    volume : 3-D uint8 grey volume (array or memmap); solid NMC = grey > ``threshold``; use the
        air/NMC mid-grey (``PhaseFit.void_threshold``): voids hold air, and their edges sit at 50 %
    labels : particle labels (0 = background) with holes filled, e.g. ``segment_particles(...).labels``
    voxel_size_um : voxel edge (µm); the paper's is 0.025
    resolution_um : size below which voids are deemed unresolved (paper: 0.05 µm)
    min_void_voxels : smaller enclosed dark components are noise, counted as solid (see particle_voids)
    boxes : bounding boxes of labels 1..n (computed with ``cc3d.statistics`` when omitted)
    significance : ``None`` (voids = grey ≤ ``threshold``, the default rule) or a
        :class:`helpers.nanoct.void_significance.VolumeNoise`: voids are then those of
        :func:`helpers.nanoct.void_significance.particle_void_crop` (a ball-mean deficit ≥ k σ of this
        volume's own noise, judged against the particle's level inside its closed, hole-filled envelope;
        ``volume`` must then be the raw, not denoised, grey and ``threshold`` is not used), every
        particle measured on its crop padded by ``crop_pad`` voxels; ``filled_voxels`` is the envelope

    Returns
    -------
    particles : pandas.DataFrame, one row per particle: ``label``, ``filled_voxels``, ``volume_um3``,
        ``void_fraction``, ``n_voids``, ``void_median_d_um``, ``void_max_d_um``,
        ``resolvable_share`` (void volume with local-thickness diameter ≥ resolution),
        ``resolvable_share_eq`` (void volume in voids of equivalent diameter ≥ resolution),
        ``radial_index``, ``solidity``, ``touches_border``
    voids : pandas.DataFrame, one row per void: ``label``, ``void``, ``volume_um3``, ``d_um``
        (2·max local thickness), ``d_eq_um`` (volume-equivalent diameter, robust to noise),
        ``radial`` (centroid distance / particle r_eq)
    """
    import pandas as pd

    from helpers.nanoct.particles import bounding_boxes, padded_box, solidity, touches_border
    from helpers.nanoct.volume_io import validate_volume

    validate_volume(volume, "volume")
    if labels.shape != tuple(volume.shape):
        raise ValueError(f"labels {labels.shape} and volume {tuple(volume.shape)} must have the same shape")
    if voxel_size_um <= 0:
        raise ValueError(f"voxel_size_um must be > 0, got {voxel_size_um}")
    if boxes is None:
        boxes = bounding_boxes(labels)
    d_min_vox = resolution_um / voxel_size_um
    rows, void_rows = [], []
    pad = 1
    if significance is not None:
        from helpers.nanoct.void_significance import crop_pad, particle_void_crop

        pad = crop_pad(significance)
        min_void_voxels = 1  # the test's void voxels as they are (each passed a significance test)
    for lab, box in enumerate(boxes, start=1):
        if box is None:
            continue
        crop_box = padded_box(box, labels.shape, pad)
        region = labels[crop_box] == lab
        if significance is None:
            solid = region & (np.asarray(volume[crop_box]) > threshold)
        else:
            envelope, void, _ = particle_void_crop(np.asarray(volume[crop_box]), region, significance)
            solid = envelope & ~void
        border = touches_border(box, labels.shape)
        if not solid.any():  # a label with no voxel above threshold: all "void"; report, don't crash
            rows.append(dict(label=lab, filled_voxels=int(region.sum()), void_fraction=1.0, n_voids=0,
                             touches_border=border))
            continue
        pv = particle_voids(solid, min_void_voxels=min_void_voxels)
        rows.append(dict(
            label=lab, filled_voxels=pv.filled_voxels, void_fraction=pv.void_fraction, n_voids=pv.n_voids,
            void_median_d_um=pv.median_diameter() * voxel_size_um,
            void_max_d_um=float(pv.void_diameters.max()) * voxel_size_um if pv.n_voids else np.nan,
            resolvable_share=pv.resolvable_share(d_min_vox),
            resolvable_share_eq=pv.resolvable_share_eq(d_min_vox), radial_index=pv.radial_index,
            solidity=solidity(pv.filled_mask) if with_solidity else np.nan, touches_border=border,
        ))
        for k in range(pv.n_voids):
            void_rows.append(dict(
                label=lab, void=k + 1, volume_um3=pv.void_volumes[k] * voxel_size_um**3,
                d_um=pv.void_diameters[k] * voxel_size_um,
                d_eq_um=(6 * pv.void_volumes[k] / np.pi) ** (1 / 3) * voxel_size_um, radial=pv.void_radial[k],
            ))
    particles = pd.DataFrame(rows)
    particles["volume_um3"] = particles["filled_voxels"] * voxel_size_um**3
    voids = pd.DataFrame(void_rows, columns=["label", "void", "volume_um3", "d_um", "d_eq_um", "radial"])
    return particles, voids


def particle_air_histograms(volume, labels: np.ndarray, label: int, air_threshold: float, max_pad: int = 64,
                            smooth_vox: float = 1.5):
    """Grey values of one particle and of the same number of nearest air voxels (Fig. S8).

    The air sample is the ``n`` air voxels closest to the particle (``n`` = the particle's voxel count),
    searched in its bounding box grown by up to ``max_pad`` voxels. Air is classified on a Gaussian-
    smoothed copy (σ = ``smooth_vox``; smoothed grey < ``air_threshold``, not in any particle, one voxel
    away from other phases) and its *raw* grey values are returned: selecting air by raw grey would
    truncate the noise distribution at the threshold and bias its width. Returns
    ``(particle_grey, air_grey)`` as uint8 arrays; raises ``ValueError``
    when too little air lies nearby.
    """
    from scipy import ndimage as ndi

    from helpers.nanoct.particles import bounding_boxes, padded_box

    boxes = bounding_boxes(labels)
    if not 1 <= label <= len(boxes) or boxes[label - 1] is None:
        raise ValueError(f"label {label} is not in the segmentation (labels 1..{len(boxes)})")
    box = boxes[label - 1]
    pad = 4
    while True:
        crop_box = padded_box(box, labels.shape, pad)
        lab_crop = labels[crop_box]
        grey = np.asarray(volume[crop_box])
        particle = lab_crop == label
        smooth = ndi.gaussian_filter(grey.astype(np.float32), smooth_vox) if smooth_vox > 0 else grey
        air = ndi.binary_erosion((lab_crop == 0) & (smooth < air_threshold), border_value=1)
        n = int(particle.sum())
        if air.sum() >= n or pad >= max_pad:
            break
        pad *= 2
    if air.sum() < n:
        raise ValueError(
            f"particle {label}: only {int(air.sum())} air voxels within {max_pad} voxels for {n} particle "
            "voxels; raise max_pad or pick a particle next to air"
        )
    dist = ndi.distance_transform_edt(~particle)
    order = np.argsort(dist[air], kind="stable")[:n]
    return grey[particle], grey[air][order]


def fwhm(values: np.ndarray, bins: np.ndarray | None = None) -> float:
    """Full width at half maximum of the histogram of ``values`` (grey levels), linear interpolation."""
    values = np.asarray(values, float)
    if values.size == 0:
        return float("nan")
    bins = np.arange(-0.5, 256.5) if bins is None else bins
    counts, edges = np.histogram(values, bins)
    centres = 0.5 * (edges[1:] + edges[:-1])
    half = counts.max() / 2
    above = np.flatnonzero(counts >= half)
    lo, hi = above[0], above[-1]
    left = centres[lo] if lo == 0 else np.interp(half, [counts[lo - 1], counts[lo]], centres[lo - 1 : lo + 1])
    right = (centres[hi] if hi == counts.size - 1
             else np.interp(half, [counts[hi + 1], counts[hi]], [centres[hi + 1], centres[hi]]))
    return float(right - left)


def plot_particle_air_histograms(ax, particle_grey, air_grey, title: str = "") -> None:
    """Fig. S8 panel: normalised grey histograms of one particle and of as many nearby air voxels."""
    bins = np.arange(-0.5, 256.5, 2)
    ax.hist(air_grey, bins, density=True, histtype="stepfilled", alpha=0.5, color="tab:blue",
            label=f"air (FWHM {fwhm(air_grey):.0f})")
    ax.hist(particle_grey, bins, density=True, histtype="stepfilled", alpha=0.5, color="tab:red",
            label=f"particle (FWHM {fwhm(particle_grey):.0f})")
    ax.set(xlabel="grey value", ylabel="normalised count", title=title)
    ax.legend(fontsize=7)


def voids_from_particle_statistics(
    volume, labels: np.ndarray, air_grey: float, boxes=None, closing_radius: int = 2, min_void_voxels: int = 4
):
    """Internal voids judged against each particle's own grey level, inside an envelope found without them.

    For every label: the envelope is the particle's mask closed by a ball of ``closing_radius`` voxels
    and hole-filled (so voids, which are enclosed, do not shape it); the particle's grey level is the
    median grey inside the envelope eroded by one voxel; a voxel of the eroded envelope is void when its
    grey is below the mid-grey of that level and ``air_grey`` (the 50 % level of an NMC/air edge of
    *this* particle, robust to a particle-to-particle offset of the reconstruction). Void components
    under ``min_void_voxels`` are dropped as noise.

    Returns a pandas.DataFrame: ``label``, ``envelope_voxels``, ``particle_grey``, ``void_voxels``,
    ``void_fraction`` (void / envelope), and the (z, y, x) boolean void mask of the whole volume.
    """
    import cc3d
    import fill_voids
    import pandas as pd
    from scipy import ndimage as ndi

    from helpers.nanoct.particles import bounding_boxes, padded_box

    if labels.shape != tuple(volume.shape):
        raise ValueError(f"labels {labels.shape} and volume {tuple(volume.shape)} must have the same shape")
    if boxes is None:
        boxes = bounding_boxes(labels)
    ball = ndi.generate_binary_structure(3, 1)
    ball = ndi.iterate_structure(ball, closing_radius) if closing_radius > 1 else ball
    void_all = np.zeros(labels.shape, bool)
    rows = []
    for lab, box in enumerate(boxes, start=1):
        if box is None:
            continue
        crop = padded_box(box, labels.shape, closing_radius + 1)
        mask = labels[crop] == lab
        envelope = ndi.binary_closing(mask, structure=ball) if closing_radius > 0 else mask
        envelope = fill_voids.fill(np.ascontiguousarray(envelope), in_place=False)
        inner = ndi.binary_erosion(envelope)
        grey = np.asarray(volume[crop], dtype=np.float32)
        if not inner.any():
            rows.append(dict(label=lab, envelope_voxels=int(envelope.sum()), particle_grey=np.nan,
                             void_voxels=0, void_fraction=0.0))
            continue
        level = float(np.median(grey[inner]))
        void = inner & (grey < 0.5 * (level + air_grey))
        if min_void_voxels > 1 and void.any():
            void = cc3d.dust(void, threshold=min_void_voxels, connectivity=26, binary_image=True).astype(bool)
        void_all[crop] |= void
        n_env = int(envelope.sum())
        rows.append(dict(label=lab, envelope_voxels=n_env, particle_grey=level, void_voxels=int(void.sum()),
                         void_fraction=float(void.sum()) / n_env))
    return pd.DataFrame(rows), void_all


def void_detection_curve(found_void: np.ndarray, true_void: np.ndarray, voxel_size_um: float,
                         bins_um=(0.05, 0.10, 0.15, 0.20, 0.30)):
    """Share of the true void volume flagged as void, by true void diameter (detection curve).

    True voids are the 26-connected components of ``true_void``, sized by their volume-equivalent
    diameter; returns a pandas.DataFrame with ``d_lo_um``, ``d_hi_um``, ``n_voids``, ``true_voxels``,
    ``recovered`` (share of those voxels inside ``found_void``).
    """
    import cc3d
    import pandas as pd

    comps, n = cc3d.connected_components(np.asarray(true_void, bool), connectivity=26, return_N=True)
    size = np.bincount(comps.ravel(), minlength=n + 1)
    hit = np.bincount(comps[np.asarray(found_void, bool)].ravel(), minlength=n + 1)
    d_um = (6.0 * size / np.pi) ** (1.0 / 3.0) * voxel_size_um
    rows = []
    for lo, hi in zip(bins_um[:-1], bins_um[1:], strict=True):
        sel = (d_um >= lo) & (d_um < hi)
        sel[0] = False
        rows.append(dict(d_lo_um=lo, d_hi_um=hi, n_voids=int(sel.sum()), true_voxels=int(size[sel].sum()),
                         recovered=float(hit[sel].sum() / size[sel].sum()) if sel.any() else np.nan))
    return pd.DataFrame(rows)
