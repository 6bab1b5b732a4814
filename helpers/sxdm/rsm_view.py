"""One scan point's 3-D reciprocal-space map (Fig. S1) and the views notebook 01 draws.

Functions
---------
``integrated_intensity_map(series, points_per_chunk=200)`` → (n_slow, n_fast) monitor-normalised sum
over all eta and good pixels (streams the frames in chunks).
``point_frames(series, point_index)`` → (n_eta, ny, nx) monitor-normalised frames of one scan point.
``centre_of_mass_q(frames, q, pixel_mask)`` → 3-D centre of mass of the intensity in Q (1/Å), over
good pixels (the per-pixel Q of ``series.q_vectors()``; no gridding, so no binning error).
``bin_rsm(frames, q, pixel_mask, q_ref, shape=(50, 100, 100), phi_deg=0.0)`` → :class:`PointRSM`:
intensity on a regular grid of the paper's peak-frame axes (X rocking, Y Debye ring, Z along 2θ),
ΔQ relative to ``q_ref``; each voxel holds the mean intensity of the pixels falling in it (as XSOCS).
``plot_rsm_slices(axes, rsm, com_q)`` draws YZ, XZ and XY slices through the centre of mass and marks it;
``plot_scan_map(ax, intensity_map, x_um, y_um, point=None)``; ``plot_frame(ax, frame, pixel_mask)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from helpers.sxdm.geometry import peak_frame_axes


def _normalisation(series) -> np.ndarray:
    mon = np.asarray(series.monitor, dtype=np.float64)
    return mon.mean() / mon  # (n_eta, n_points)


def integrated_intensity_map(series, points_per_chunk: int = 200) -> np.ndarray:
    """Monitor-normalised counts summed over eta and good pixels, shape (n_slow, n_fast).

    Memory: one chunk, 4·points_per_chunk·n_eta·ny·nx bytes.
    """
    good = ~series.pixel_mask
    norm = _normalisation(series)
    total = np.empty(series.n_points)
    for sl, frames in series.iter_chunks(points_per_chunk):
        sums = frames[..., good].sum(axis=-1, dtype=np.float64)  # (n_chunk, n_eta)
        total[sl] = np.sum(sums * norm[:, sl].T, axis=1)
    return total.reshape(series.scan_shape)


def point_frames(series, point_index: int) -> np.ndarray:
    """Monitor-normalised frames (n_eta, ny, nx) float64 of one scan point (index slow·n_fast + fast)."""
    if not 0 <= point_index < series.n_points:
        raise ValueError(f"point_index {point_index} outside 0..{series.n_points - 1}")
    frames = series.read_points(slice(point_index, point_index + 1))[0].astype(np.float64)
    return frames * _normalisation(series)[:, point_index, None, None]


def centre_of_mass_q(frames: np.ndarray, q: np.ndarray, pixel_mask: np.ndarray) -> np.ndarray:
    """Intensity-weighted mean Q (1/Å) over good pixels; frames (n_eta, ny, nx), q (n_eta, ny, nx, 3)."""
    good = ~np.broadcast_to(pixel_mask, frames.shape)
    weights = np.where(good, frames, 0.0)
    total = weights.sum()
    if total <= 0:
        raise ValueError("no counts in the good pixels of this scan point: no centre of mass")
    return np.einsum("erc,erck->k", weights, q) / total


@dataclass
class PointRSM:
    """A 3-D reciprocal-space map on the peak-frame grid (X rocking, Y Debye ring, Z along 2θ)."""

    summed: np.ndarray  # (nX, nY, nZ) sum of the intensities of the pixels in each voxel
    counts: np.ndarray  # (nX, nY, nZ) number of pixels in each voxel
    edges: tuple[np.ndarray, np.ndarray, np.ndarray]  # ΔQ bin edges (1/Å) along X, Y, Z
    axes: np.ndarray  # (3, 3) rows X, Y, Z in the sample frame
    q_ref: np.ndarray  # (3,) origin of ΔQ (1/Å)

    @property
    def intensity(self) -> np.ndarray:
        """Mean pixel intensity per voxel (NaN where no pixel fell), as XSOCS grids it."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.counts > 0, self.summed / np.maximum(self.counts, 1), np.nan)

    def to_grid(self, q) -> np.ndarray:
        """ΔQ components (X, Y, Z) of sample-frame Q vectors (1/Å)."""
        return (np.asarray(q) - self.q_ref) @ self.axes.T

    @property
    def centres(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return tuple(0.5 * (e[1:] + e[:-1]) for e in self.edges)


def bin_rsm(
    frames,
    q,
    pixel_mask,
    q_ref,
    shape=(50, 100, 100),
    phi_deg: float = 0.0,
    peak_fraction: float | None = 0.05,
    margin: float = 0.5,
) -> PointRSM:
    """Bin one point's frames onto a regular (X, Y, Z) grid (sum and pixel count per voxel).

    The grid spans the good pixels with intensity ≥ ``peak_fraction`` · max, widened by ``margin`` of
    that span on each side (``peak_fraction=None``: all good pixels, as XSOCS does for its global grid).
    """
    axes = peak_frame_axes(q_ref, phi_deg)
    good = ~np.broadcast_to(pixel_mask, frames.shape)
    dq = (q[good] - q_ref) @ axes.T
    values = frames[good]
    if peak_fraction is None:
        lo, hi = dq.min(axis=0), dq.max(axis=0)
    else:
        strong = dq[values >= peak_fraction * values.max()]
        lo, hi = strong.min(axis=0), strong.max(axis=0)
        width = np.maximum(hi - lo, 1e-6)
        lo, hi = lo - margin * width, hi + margin * width
    edges = tuple(np.linspace(lo[k], hi[k] + 1e-12, n + 1) for k, n in enumerate(shape))
    summed, _ = np.histogramdd(dq, bins=edges, weights=values)
    counts, _ = np.histogramdd(dq, bins=edges)
    return PointRSM(summed, counts, edges, axes, np.asarray(q_ref, dtype=np.float64))


def plot_rsm_slices(
    axes, rsm: PointRSM, com_q, slab: int = 4, smooth_voxels: float = 1.5, cmap: str = "viridis"
):
    """YZ, XZ, XY slabs (±``slab`` voxels, default ≥ one eta step) through the centre of mass ``com_q`` (×).

    The grid is finer than the pixel/eta sampling, so the slices are shown by normalised convolution
    (Gaussian-smoothed sum / smoothed pixel count, σ = ``smooth_voxels``), which fills the empty voxels
    without shifting the peak. ΔQ in 10⁻³ 1/Å. Returns the three images.
    """
    from scipy.ndimage import gaussian_filter

    com = rsm.to_grid(com_q)
    centres = rsm.centres
    index = [int(np.clip(np.searchsorted(c, v), 0, c.size - 1)) for c, v in zip(centres, com, strict=True)]
    names = ("ΔQx (rocking)", "ΔQy (Debye ring)", "ΔQz (2θ, d)")
    images = []
    for ax, (a, b, cut) in zip(axes, ((1, 2, 0), (0, 2, 1), (0, 1, 2)), strict=True):
        sl = [slice(None)] * 3
        sl[cut] = slice(max(index[cut] - slab, 0), index[cut] + slab + 1)
        summed = gaussian_filter(rsm.summed[tuple(sl)].sum(axis=cut), smooth_voxels)
        counts = gaussian_filter(rsm.counts[tuple(sl)].sum(axis=cut), smooth_voxels)
        plane = np.where(counts > 1e-3, summed / np.maximum(counts, 1e-3), np.nan)
        extent = [
            rsm.edges[a][0] * 1e3,
            rsm.edges[a][-1] * 1e3,
            rsm.edges[b][0] * 1e3,
            rsm.edges[b][-1] * 1e3,
        ]
        images.append(ax.imshow(plane.T, origin="lower", extent=extent, aspect="auto", cmap=cmap))
        ax.plot(com[a] * 1e3, com[b] * 1e3, "x", color="red", ms=9, mew=2)
        ax.set_xlabel(f"{names[a]} (10⁻³ Å⁻¹)")
        ax.set_ylabel(f"{names[b]} (10⁻³ Å⁻¹)")
    return images


def plot_scan_map(ax, intensity_map, x_um, y_um, point=None, cmap: str = "magma"):
    """Integrated-intensity map over the piezo raster (µm); ``point`` = (slow, fast) marked with ○."""
    step_x = x_um[0, 1] - x_um[0, 0] if x_um.shape[1] > 1 else 1.0
    step_y = y_um[1, 0] - y_um[0, 0] if y_um.shape[0] > 1 else 1.0
    extent = [
        x_um[0, 0] - step_x / 2,
        x_um[0, -1] + step_x / 2,
        y_um[0, 0] - step_y / 2,
        y_um[-1, 0] + step_y / 2,
    ]
    image = ax.imshow(intensity_map, origin="lower", extent=extent, cmap=cmap)
    if point is not None:
        ax.plot(x_um[point], y_um[point], "o", mfc="none", mec="cyan", ms=10, mew=2)
    ax.set_xlabel("x = pix (µm)")
    ax.set_ylabel("y = piy (µm)")
    return image


def plot_frame(ax, frame, pixel_mask, vmax=None, cmap: str = "viridis"):
    """One detector frame (ROI), masked pixels blank; rows along 2θ (Z), columns along the ring (Y)."""
    shown = np.ma.masked_array(frame, mask=pixel_mask)
    image = ax.imshow(shown, origin="upper", cmap=cmap, vmin=0, vmax=vmax)
    ax.set_xlabel("column (Y)")
    ax.set_ylabel("row (Z)")
    return image
