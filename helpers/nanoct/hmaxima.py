"""H-maxima markers by grey reconstruction without sorting (numba, Vincent 1993 hybrid algorithm).

:func:`h_maxima` returns the same ``uint8`` array as ``skimage.morphology.h_maxima(image, h)`` with its
default footprint (full connectivity: 8 neighbours in 2-D, 26 in 3-D) on floating-point images. It
repeats scikit-image's definition step by step: the seed ``image - h - 2·resolution·|image|`` (the float
guard against rounding, ``resolution = np.finfo(dtype).resolution``), the grey reconstruction by
dilation of ``image`` from that seed in ``float32`` (``float64`` for ``float64`` images), and the
residue test ``image - reconstruction >= h``. Only the reconstruction differs: scikit-image's downhill
filter argsorts every voxel of the padded seed/mask pair twice; here a raster scan, an anti-raster scan
and a FIFO queue (Vincent 1993, "hybrid" algorithm) find the same reconstruction without sorting (on
the distance maps of particle crops 10-20× faster per box voxel, with a peak of ~26 B per float32 voxel
against scikit-image's ~77 B). Grey reconstruction
only selects values (maxima of minima along paths), so the reconstruction and hence the markers are
identical, not approximately equal.

Reference: L. Vincent, "Morphological grayscale reconstruction in image analysis: applications and
efficient algorithms", IEEE Trans. Image Process. 2 (1993) 176-201, section V.C.
"""

from __future__ import annotations

import numba
import numpy as np


def h_maxima(image: np.ndarray, h: float) -> np.ndarray:
    """Maxima of dynamic ≥ ``h`` of a 1-, 2- or 3-D float image (full connectivity); ``uint8`` 0/1.

    Same output as ``skimage.morphology.h_maxima(image, h)`` (default footprint) on float images.
    ``h`` is in the image's units (voxels for a distance map). Integer images are refused (scikit-image
    shifts them with clipping instead; call it directly for those), as are NaN/inf values.
    """
    image = np.asarray(image)
    if not np.issubdtype(image.dtype, np.floating):
        raise TypeError(f"h_maxima: a floating-point image is needed, got dtype {image.dtype}; "
                        "use skimage.morphology.h_maxima for integer images")
    if not 1 <= image.ndim <= 3:
        raise ValueError(f"h_maxima: a 1-, 2- or 3-D image is needed, got shape {image.shape}")
    if image.size == 0:
        raise ValueError("h_maxima: the image is empty")
    low, high = image.min(), image.max()  # NaN propagates into both, inf shows in one
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError("h_maxima: the image holds NaN or infinite values")
    # scikit-image's steps, in its order and with its dtypes (see skimage.morphology.extrema.h_maxima)
    if h > high - low:  # np.ptp(image)
        return np.zeros(image.shape, dtype=np.uint8)
    if h == 0:
        raise ValueError("h = 0 is ambiguous, use local_maxima() instead?")
    if not h > 0:
        raise ValueError(f"h_maxima: h must be positive, got {h}")
    resolution = 2 * np.finfo(image.dtype).resolution * np.abs(image)
    shifted_img = image - h - resolution  # <= image for h > 0, as the reconstruction needs
    rec_img = _reconstruct_padded(shifted_img, image)
    residue_img = image - rec_img
    return (residue_img >= h).astype(np.uint8)


def reconstruction_by_dilation(seed: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Grey reconstruction by dilation of ``mask`` from ``seed`` (``seed <= mask``), full connectivity.

    Equals ``skimage.morphology.reconstruction(seed, mask, method="dilation")`` with its default
    footprint, computed in the same float type (``float64`` for a ``float64`` mask, else ``float32``).
    """
    seed, mask = np.asarray(seed), np.asarray(mask)
    if seed.shape != mask.shape:
        raise ValueError(f"seed shape {seed.shape} differs from mask shape {mask.shape}")
    if not 1 <= mask.ndim <= 3:
        raise ValueError(f"reconstruction: a 1-, 2- or 3-D image is needed, got shape {mask.shape}")
    if np.any(seed > mask):
        raise ValueError("Intensity of seed image must be less than that of the mask image "
                         "for reconstruction by dilation.")
    return _reconstruct_padded(seed, mask)


def _reconstruct_padded(seed: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Copy seed and mask into -inf-padded 3-D arrays of scikit-image's float type; reconstruct."""
    float_dtype = np.float64 if mask.dtype == np.float64 else np.float32
    shape3 = (1,) * (3 - mask.ndim) + mask.shape
    padded_shape = tuple(n + 2 for n in shape3)
    # padded by one voxel of -inf on every side: the scans need no bounds checks and the pad never rises
    marker = np.empty(padded_shape, float_dtype)
    limit = np.empty(padded_shape, float_dtype)
    for values, out in ((seed, marker), (mask, limit)):
        if values.dtype not in (np.float32, np.float64):
            values = values.astype(float_dtype)  # float16: exact
        _pad_into(np.ascontiguousarray(values.reshape(shape3)), out)
    _reconstruct(marker.reshape(-1), limit.reshape(-1), padded_shape, _neighbour_offsets(padded_shape))
    return marker[1:-1, 1:-1, 1:-1].reshape(mask.shape)


@numba.njit(cache=True, nogil=True)
def _pad_into(values, out):
    """``out[1:-1, 1:-1, 1:-1] = values`` (cast as numpy casts) and -inf on the one-voxel border."""
    nz, ny, nx = values.shape
    out[0] = -np.inf
    out[nz + 1] = -np.inf
    for z in range(nz):
        out[z + 1, 0] = -np.inf
        out[z + 1, ny + 1] = -np.inf
        for y in range(ny):
            out[z + 1, y + 1, 0] = -np.inf
            out[z + 1, y + 1, nx + 1] = -np.inf
            for x in range(nx):
                out[z + 1, y + 1, x + 1] = values[z, y, x]


def _neighbour_offsets(padded_shape) -> np.ndarray:
    """Flat-index offsets of the 26 neighbours, ascending: the first 13 precede a voxel in raster order."""
    _, ny, nx = padded_shape
    steps = [(dz * ny + dy) * nx + dx for dz in (-1, 0, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
             if (dz, dy, dx) != (0, 0, 0)]
    return np.array(sorted(steps), dtype=np.int64)


@numba.njit(cache=True, nogil=True)
def _reconstruct(marker, limit, shape, offsets):
    """Vincent's hybrid reconstruction by dilation, in place on the flat padded ``marker``.

    1. raster scan: J(p) ← min(max(J over p and its raster-preceding neighbours), I(p));
    2. anti-raster scan: the same with the following neighbours; p is queued when a following
       neighbour q could still rise (J(q) < J(p) and J(q) < I(q));
    3. FIFO propagation: each dequeued p raises every neighbour q with J(q) < J(p) and J(q) ≠ I(q) to
       min(J(p), I(q)) and queues it unless it is already queued (it then spreads its latest value
       when dequeued), so the circular queue never holds more than every voxel once.
    Pad voxels hold -inf in both arrays, so they are never raised nor queued.
    """
    nz, ny, nx = shape
    for z in range(1, nz - 1):
        for y in range(1, ny - 1):
            row = (z * ny + y) * nx
            for p in range(row + 1, row + nx - 1):
                value = marker[p]
                for k in range(13):
                    other = marker[p + offsets[k]]
                    if other > value:
                        value = other
                ceiling = limit[p]
                marker[p] = value if value < ceiling else ceiling
    capacity = marker.size
    queue = np.empty(capacity, np.int64)  # pages are touched only as far as the queue grows
    queued = np.zeros(capacity, np.bool_)
    head = 0
    count = 0
    for z in range(nz - 2, 0, -1):
        for y in range(ny - 2, 0, -1):
            row = (z * ny + y) * nx
            for p in range(row + nx - 2, row, -1):
                value = marker[p]
                for k in range(13, 26):
                    other = marker[p + offsets[k]]
                    if other > value:
                        value = other
                ceiling = limit[p]
                if value > ceiling:
                    value = ceiling
                marker[p] = value
                for k in range(13, 26):
                    q = p + offsets[k]
                    if marker[q] < value and marker[q] < limit[q]:
                        queue[(head + count) % capacity] = p
                        queued[p] = True
                        count += 1
                        break
    while count > 0:
        p = queue[head]
        queued[p] = False
        head = (head + 1) % capacity
        count -= 1
        value = marker[p]
        for k in range(26):
            q = p + offsets[k]
            current = marker[q]
            if current < value and current != limit[q]:
                ceiling = limit[q]
                marker[q] = value if value < ceiling else ceiling
                if not queued[q]:
                    queue[(head + count) % capacity] = q
                    queued[q] = True
                    count += 1
