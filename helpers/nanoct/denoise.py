"""Denoise an 8-bit nano-CT volume block-wise before the three-phase fit and the threshold.

At the paper's contrast-to-noise ratio (CNR = (m_NMC − m_air)/σ_air ≈ 2.3, WORKBOOK §3) the air,
glue and NMC grey peaks overlap (Ashman's D < 2) and :func:`helpers.nanoct.phases.fit_three_phases`
refuses. An edge-preserving filter lowers σ inside each phase more than it blurs the phase edges, so
the peaks separate again. Three well-kept filters are offered (scikit-image, scipy):

``"tv"`` (default)
    total-variation (Chambolle) denoising, :func:`skimage.restoration.denoise_tv_chambolle`, with a
    fixed 30 iterations (its default stops on a global energy criterion, which made the result depend
    on the slab; run to convergence, TV over-smooths: 100 iterations matched 19 % instead of 41 %);
    ``strength`` is its ``weight`` for grey scaled to [0, 1] (default 0.2).
``"nlm"``
    non-local means, :func:`skimage.restoration.denoise_nl_means` in 3-D (``fast_mode``, patch 5³,
    search distance 3); ``strength`` is the filter parameter ``h`` in grey levels (default 30, about
    1.2 σ of the noise at CNR 2.3 in the phantom's 8-bit window; ``estimate_sigma`` is not used since
    reconstruction noise is correlated between voxels and the wavelet estimate then reads σ ~5× low).
``"median"``
    3-D median, :func:`scipy.ndimage.median_filter`; ``strength`` is the cube edge (odd, default 5).

Measured on a 128³ powder phantom (37 particles, d50 36 voxels) at CNR 2.3
(``benchmarks/RESULTS_ct_denoise.md``): all three restore D > 2; with the glue/NMC mid-grey threshold
TV matches 40 % of the particles at IoU ≥ 0.8 (NMC volume +3.0 %), NLM 49 % (+2.5 %), the median 35 %
(+2.3 %); TV and NLM reach the same best mask IoU with the NMC truth (0.87, median 0.84), and TV costs
1/8 to 1/15 of NLM (0.7 s vs 5.7 s, 0.8 s vs 12.5 s in two runs on the shared 2-core machine), hence
the default. On the default phantom's smaller particles (d50 28
voxels) the median does not restore D > 2 at all.

The result keeps the input's grey scale (rounded back to uint8, no rescaling), so the phantom's or the
instrument's 8-bit → 32-bit window still applies.

Memory: the volume is processed in blocks of ``slab`` z-planes (and, with ``tile``, ``tile × tile``
voxels in y, x) with ``halo`` extra voxels on each side that are filtered and discarded. Peak working
memory is ``(slab + 2·halo) · (tile + 2·halo)²`` voxels (``ny · nx`` in place of the tile² without
``tile``) × the filter's need, measured with ``tracemalloc``: ~135 B/voxel for TV, ~62 B for NLM,
~30 B for the median; plus the uint8 output (1 B/voxel of the volume, or a caller-given ``out`` such as
a ``numpy.memmap``). With the defaults ``slab = tile = 128`` and TV's 12-voxel halo, on any volume
(the paper's 960 × 2560 × 2560 included) that is 152³ voxels × 135 B ≈ 0.5 GB per block; the halos
cost (152/128)³ − 1 = 67 % extra work.
Median and NLM are local, so block-wise equals whole-volume denoising exactly once ``halo`` covers the
filter's reach (median: edge // 2; NLM: search distance + patch // 2 = 5); TV is iterative, and with a
fixed iteration count and a 12-voxel halo it agrees within one grey level (tested).
"""

from __future__ import annotations

import numpy as np

METHODS = ("tv", "nlm", "median")
DEFAULT_STRENGTH = {"tv": 0.2, "nlm": 30.0, "median": 5}
NLM_PATCH_SIZE = 5
NLM_PATCH_DISTANCE = 3
TV_ITERATIONS = 30


def default_halo(method: str, strength: float | None = None) -> int:
    """Planes of overlap each side that make slab-wise filtering equal the whole-volume result.

    Median: half the cube edge; NLM: search distance + half the patch; TV (30 fixed iterations, each
    reaching one voxel further, but with a fast-decaying influence): 12 planes, where the measured
    slab-edge difference is at most one grey level (rounding) in a few voxels per thousand.
    """
    _check_method(method)
    if method == "median":
        return int(_median_size(strength)) // 2
    if method == "nlm":
        return NLM_PATCH_DISTANCE + NLM_PATCH_SIZE // 2
    return 12


def _check_method(method):
    if method not in METHODS:
        raise ValueError(f"unknown denoise method {method!r}: choose one of {', '.join(METHODS)}")


def _median_size(strength) -> int:
    size = DEFAULT_STRENGTH["median"] if strength is None else strength
    if float(size) != int(size) or int(size) < 3 or int(size) % 2 == 0:
        raise ValueError(f"median strength is the cube edge in voxels: an odd integer ≥ 3, got {size}")
    return int(size)


def _filter_block(block: np.ndarray, method: str, strength: float) -> np.ndarray:
    """Denoise one uint8 block; returns float grey values on the same scale (0..255)."""
    if method == "median":
        from scipy import ndimage

        return ndimage.median_filter(block, size=int(strength), mode="reflect")
    if method == "tv":
        from skimage.restoration import denoise_tv_chambolle

        # a fixed number of iterations (eps=0) makes the result a function of each voxel's surroundings
        # only, not of when the whole block converges, so slabs agree with the whole volume
        return 255.0 * denoise_tv_chambolle(block.astype(np.float32) / 255.0, weight=strength, eps=0.0,
                                            max_num_iter=TV_ITERATIONS)
    from skimage.restoration import denoise_nl_means

    return denoise_nl_means(block.astype(np.float32), patch_size=NLM_PATCH_SIZE,
                            patch_distance=NLM_PATCH_DISTANCE, h=strength, fast_mode=True)


def denoise_volume(volume_u8, method: str = "tv", strength: float | None = None, slab: int = 128,
                   halo: int | None = None, out=None, tile: int | None = 128) -> np.ndarray:
    """Denoise an 8-bit volume in overlapping blocks; returns uint8 on the input's grey scale.

    Parameters
    ----------
    volume_u8 : 3-D uint8 array (may be a ``numpy.memmap`` or an HDF5 dataset; never modified)
    method : ``"tv"``, ``"nlm"`` or ``"median"`` (see the module docstring)
    strength : TV weight (grey scaled to [0, 1]), NLM ``h`` (grey levels) or median edge (voxels);
        ``None`` takes :data:`DEFAULT_STRENGTH`
    slab : z-planes filtered and written per step (memory bound, see the module docstring)
    halo : extra z-planes read on each side of a slab and discarded; ``None``: :func:`default_halo`
    out : optional uint8 array of the volume's shape to write into (e.g. a ``numpy.memmap``)
    tile : y and x edge of a block (voxels); ``None`` takes whole slices. The defaults (128, 128) bound
        TV's working memory to ~0.5 GB whatever the volume's size (module docstring)

    Raises
    ------
    ValueError
        for a volume that is not 3-D uint8, an unknown method, a non-positive strength, slab < 1,
        halo < 0 or an ``out`` of the wrong shape or dtype.
    """
    from helpers.nanoct.volume_io import validate_volume

    _check_method(method)
    validate_volume(volume_u8, "volume_u8")
    if method == "median":
        strength = _median_size(strength)
    else:
        strength = DEFAULT_STRENGTH[method] if strength is None else float(strength)
        if not np.isfinite(strength) or strength <= 0:
            raise ValueError(f"{method} strength must be a positive number, got {strength}")
    if int(slab) < 1:
        raise ValueError(f"slab must be ≥ 1 z-plane, got {slab}")
    if tile is not None and int(tile) < 1:
        raise ValueError(f"tile must be ≥ 1 voxel or None, got {tile}")
    halo = default_halo(method, strength) if halo is None else int(halo)
    if halo < 0:
        raise ValueError(f"halo must be ≥ 0 planes, got {halo}")
    shape = tuple(int(n) for n in volume_u8.shape)
    steps = (int(slab), int(tile or shape[1]), int(tile or shape[2]))
    if out is None:
        out = np.empty(volume_u8.shape, np.uint8)
    elif tuple(out.shape) != tuple(volume_u8.shape) or out.dtype != np.uint8:
        raise ValueError(f"out must be uint8 of shape {tuple(volume_u8.shape)}, got {out.dtype} "
                         f"{tuple(out.shape)}")
    for z0 in range(0, shape[0], steps[0]):
        for y0 in range(0, shape[1], steps[1]):
            for x0 in range(0, shape[2], steps[2]):
                core = [slice(s0, min(s0 + step, n)) for s0, step, n in zip((z0, y0, x0), steps, shape,
                                                                             strict=True)]
                read = tuple(slice(max(c.start - halo, 0), min(c.stop + halo, n))
                             for c, n in zip(core, shape, strict=True))
                keep = tuple(slice(c.start - r.start, c.stop - r.start)
                             for c, r in zip(core, read, strict=True))
                filtered = _filter_block(np.asarray(volume_u8[read]), method, strength)[keep]
                out[tuple(core)] = np.clip(np.rint(filtered), 0, 255).astype(np.uint8)
    return out
