"""Grey close-ups of single particles (the paper's Fig. 4: a faceted crystal, an aggregate).

A close-up is the central slice through a particle's bounding box (padded), drawn in grey with the
particle's outline from a label volume (truth or segmentation).
"""

from __future__ import annotations

import numpy as np


def closeup_slices(labels: np.ndarray, label: int, pad: int = 6) -> tuple[int, slice, slice]:
    """(z of the particle's largest cross-section, y slice, x slice) of its padded bounding box."""
    where = np.nonzero(labels == label)
    if where[0].size == 0:
        raise ValueError(f"label {label} is not in the label volume")
    area = np.bincount(where[0])
    z = int(np.argmax(area))
    y0, y1 = max(where[1].min() - pad, 0), min(where[1].max() + 1 + pad, labels.shape[1])
    x0, x1 = max(where[2].min() - pad, 0), min(where[2].max() + 1 + pad, labels.shape[2])
    return z, slice(y0, y1), slice(x0, x1)


def plot_closeup(ax, volume, labels: np.ndarray, label: int, voxel_size_um: float, title: str = "",
                 pad: int = 6, outline_color: str = "tab:orange") -> None:
    """Grey close-up of particle ``label`` in ``volume`` with its outline from ``labels``; µm axes."""
    z, ys, xs = closeup_slices(labels, label, pad)
    img = np.asarray(volume[z, ys, xs], dtype=float)
    extent = (0, img.shape[1] * voxel_size_um, img.shape[0] * voxel_size_um, 0)
    ax.imshow(img, cmap="gray", extent=extent, interpolation="nearest")
    yc = (np.arange(img.shape[0]) + 0.5) * voxel_size_um
    xc = (np.arange(img.shape[1]) + 0.5) * voxel_size_um
    ax.contour(xc, yc, (labels[z, ys, xs] == label).astype(float), levels=[0.5], colors=[outline_color],
               linewidths=0.8)
    ax.set(xlabel="µm", title=title or f"particle {label}, z = {z}")
