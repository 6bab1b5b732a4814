"""Figures of the segmentation stage: phase fit, label overlays."""

from __future__ import annotations

import numpy as np

from helpers.nanoct.phases import PHASE_NAMES, PhaseFit


def plot_phase_fit(ax, fit: PhaseFit, log: bool = True) -> None:
    """Grey histogram, the three fitted Gaussians and their sum, thresholds with their ±1σ band."""
    grey = fit.bin_centres
    ax.step(grey, fit.counts, where="mid", color="0.4", lw=1, label="histogram")
    fine = np.linspace(0, 255, 1021)
    for i, (name, colour) in enumerate(zip(PHASE_NAMES, ("tab:blue", "tab:green", "tab:red"), strict=True)):
        ax.plot(fine, fit.component(i, fine), color=colour, lw=1.2,
                label=f"{name}: {fit.means[i]:.0f} ± {fit.sigmas[i]:.0f} ({fit.weights[i]:.0%})")
    ax.plot(fine, fit.model(fine), "k--", lw=1, label="sum of 3 Gaussians")
    for t, s, style in ((fit.threshold_air, fit.threshold_air_sigma, ":"),
                        (fit.threshold_nmc, fit.threshold_nmc_sigma, "-")):
        ax.axvspan(t - s, t + s, color="orange", alpha=0.3)
        ax.axvline(t, color="orange", ls=style, lw=1.5)
    ax.set(xlabel="grey value (8-bit)", ylabel="voxels per grey level", xlim=(0, 255))
    if log:
        ax.set_yscale("log")
        ax.set_ylim(max(fit.counts.max() * 1e-4, 0.5), fit.counts.max() * 2)
    ax.legend(fontsize=7, loc="upper right")


def plot_slice_overlay(ax, volume, labels, z: int, cmap_labels: str = "tab20") -> None:
    """One slice of the grey volume with particle outlines (colour per label)."""
    from skimage.segmentation import find_boundaries

    grey = np.asarray(volume[z])
    lab = np.asarray(labels[z])
    ax.imshow(grey, cmap="gray", interpolation="nearest")
    edges = find_boundaries(lab, mode="inner")
    overlay = np.ma.masked_where(~edges, lab % 20)
    ax.imshow(overlay, cmap=cmap_labels, vmin=0, vmax=19, interpolation="nearest")
    ax.set_axis_off()


def plot_labels(ax, labels, z: int, defective_labels=None) -> None:
    """Label slice in random colours; defective particles hatched in red outline."""
    lab = np.asarray(labels[z]).astype(np.int64)
    rng = np.random.default_rng(0)
    colours = rng.uniform(0.25, 1.0, (int(lab.max()) + 1, 3))
    colours[0] = 0
    ax.imshow(colours[lab], interpolation="nearest")
    if defective_labels is not None and len(defective_labels):
        ax.contour(np.isin(lab, defective_labels), levels=[0.5], colors="red", linewidths=1.2)
    ax.set_axis_off()

