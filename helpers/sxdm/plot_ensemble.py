"""Figures of the SXDM ensemble and the curvature descriptor (Fig. 3A–B, S3–S6): pure ``plot_x(ax, …)``.

Each function draws on axes it is given and returns nothing, so the static figure and the widget of
a notebook call the same code.
"""

from __future__ import annotations

import numpy as np
from matplotlib.colors import hsv_to_rgb


def _extent(maps):
    dx = float(np.median(np.diff(maps.x_um))) if maps.x_um.size > 1 else 1.0
    dy = float(np.median(np.diff(maps.y_um))) if maps.y_um.size > 1 else 1.0
    return (maps.x_um[0] - dx / 2, maps.x_um[-1] + dx / 2, maps.y_um[-1] + dy / 2, maps.y_um[0] - dy / 2)


def tilt_colours(tilt_xy_deg: np.ndarray, mask: np.ndarray, max_tilt_deg: float | None = None) -> np.ndarray:
    """RGBA image of a tilt map in pole-figure colours: hue = azimuth, saturation = tilt / max tilt.

    The tilt is taken relative to the mean over the mask (as the paper's maps), white = no tilt.
    """
    tilt = np.asarray(tilt_xy_deg, float)
    rel = tilt - np.nanmean(tilt[mask], axis=0)
    mag = np.hypot(rel[..., 0], rel[..., 1])
    top = max_tilt_deg or float(np.nanmax(mag[mask])) or 1.0
    hsv = np.stack(
        [
            (np.arctan2(rel[..., 1], rel[..., 0]) / (2 * np.pi)) % 1.0,
            np.clip(mag / top, 0, 1),
            np.ones(mag.shape),
        ],
        -1,
    )
    rgba = np.ones(mag.shape + (4,))
    rgba[..., :3] = hsv_to_rgb(np.nan_to_num(hsv))
    rgba[~mask, 3] = 0.0
    return rgba


def plot_d_map(ax, maps, title: str = "", cmap: str = "coolwarm", mask=None) -> None:
    """d-spacing map over the mask, each particle with its own colour range (2–98 %), as Fig. 3A."""
    mask = maps.mask if mask is None else mask
    d = np.where(mask, maps.d_spacing, np.nan)
    lo, hi = np.nanpercentile(d, [2, 98])
    im = ax.imshow(d, extent=_extent(maps), cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    cbar = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    cbar.ax.tick_params(labelsize=6)
    cbar.formatter.set_useOffset(False)
    cbar.update_ticks()


def plot_tilt_map(ax, maps, title: str = "", mask=None) -> None:
    """Tilt map in pole-figure colours (hue = direction, saturation = magnitude), as Fig. 3B."""
    mask = maps.mask if mask is None else mask
    ax.imshow(tilt_colours(maps.tilt_xy_deg, mask), extent=_extent(maps), interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_intensity(ax, maps, title: str = "") -> None:
    """Integrated intensity (log scale) of the whole scan, mask outline in black (Fig. S3)."""
    inten = np.where(maps.intensity > 0, maps.intensity, np.nan)
    ax.imshow(np.log10(inten), extent=_extent(maps), cmap="magma", interpolation="nearest")
    ax.contour(maps.x_um, maps.y_um, maps.mask.astype(float), levels=[0.5], colors="k", linewidths=0.6)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_pole_figure(ax, maps, title: str = "", mask=None, max_points: int = 4000) -> None:
    """Pole figure (Fig. S4): each scan point's tilt vector relative to the mean, coloured as the map."""
    mask = maps.mask if mask is None else mask
    tilt = maps.tilt_xy_deg
    rel = tilt[mask] - np.nanmean(tilt[mask], axis=0)
    colours = tilt_colours(tilt, mask)[mask]
    step = max(1, rel.shape[0] // max_points)
    ax.scatter(rel[::step, 0], rel[::step, 1], c=colours[::step, :3], s=4, edgecolors="none")
    ax.axhline(0, color="0.7", lw=0.5)
    ax.axvline(0, color="0.7", lw=0.5)
    lim = float(np.nanmax(np.abs(rel))) * 1.1 or 0.1
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=6)


def plot_domain_row(axes, maps, labels, label: int, title: str = "") -> None:
    """One row of Fig. S5 for domain ``label``: intensity, d map with inset histogram, tilt map."""
    sel = labels == label
    inten = np.where(sel, maps.intensity, np.nan)
    axes[0].imshow(inten, extent=_extent(maps), cmap="magma", interpolation="nearest")
    axes[0].set_title(f"{title} intensity", fontsize=8)
    plot_d_map(axes[1], maps, f"{title} d (Å)", mask=sel)
    inset = axes[1].inset_axes([0.02, 0.02, 0.35, 0.25])
    inset.hist(maps.d_spacing[sel], bins=20, color="0.3")
    inset.set_xticks([])
    inset.set_yticks([])
    plot_tilt_map(axes[2], maps, f"{title} tilt", mask=sel)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])


def plot_curvature_fit(ax, sizes_um, totals_deg, names, fits=(), sigmas_deg=None, paper_points=None) -> None:
    """Fig. S6: total curvature vs size per particle, with the fitted lines (R in the legend)."""
    sizes_um = np.asarray(sizes_um, float)
    totals_deg = np.asarray(totals_deg, float)
    ax.errorbar(sizes_um, totals_deg, yerr=sigmas_deg, fmt="o", color="k", ms=4, capsize=2, label="particles")
    for x, y, n in zip(sizes_um, totals_deg, names, strict=True):
        ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(4, 3), fontsize=8)
    grid = np.linspace(0, max(sizes_um.max() * 1.1, 1.0), 50)
    styles = ("-", "--", ":")
    for fit, style in zip(fits, styles, strict=False):
        lo, hi = fit.radius_interval_um
        kind = "through origin" if fit.through_origin else "with intercept"
        ax.plot(
            grid,
            fit.intercept_deg + fit.slope_deg_per_um * grid,
            style,
            label=f"{kind}: R = {fit.radius_um:.0f} µm [{lo:.0f}, {hi:.0f}]",
        )
    if paper_points is not None:
        ax.plot(*paper_points, "s", mfc="none", color="C3", label="paper, particle 3")
    ax.set_xlabel("size along the bending gradient (µm)")
    ax.set_ylabel("total curvature Δφ (deg)")
    ax.set_xlim(0, None)
    ax.set_ylim(0, None)
    ax.legend(fontsize=7, loc="lower right")
