"""Figures of the correlative analysis: registration overlay and residual, association scatter."""

from __future__ import annotations

import numpy as np

from helpers.correlate import Association, Registration, scan_grid


def plot_registration(axes, maps, registration: Registration) -> None:
    """SXDM intensity with the registered CT envelope outline, and the registration residual."""
    x, y, step = scan_grid(maps)
    extent = (x.min() - step / 2, x.max() + step / 2, y.min() - step / 2, y.max() + step / 2)
    intensity = np.nan_to_num(np.asarray(maps.intensity, float))
    axes[0].imshow(intensity / intensity.max(), origin="lower", extent=extent, cmap="magma")
    t = registration.thickness_on_sxdm
    axes[0].contour(x, y, t / t.max(), levels=[0.2, 0.6], colors=["c", "w"], linewidths=1)
    axes[0].set_title(f"SXDM intensity, CT outline (NCC {registration.ncc:.3f})", fontsize=9)
    lim = float(np.max(np.abs(registration.residual_map))) or 1.0
    im = axes[1].imshow(
        registration.residual_map, origin="lower", extent=extent, cmap="RdBu_r", vmin=-lim, vmax=lim
    )
    axes[1].set_title(f"residual (relative rms {registration.residual_rel:.3f})", fontsize=9)
    for ax in axes[:2]:
        ax.set_xlabel("x (µm)")
        ax.set_ylabel("y (µm)")
    axes[1].figure.colorbar(im, ax=axes[1], shrink=0.8)


def plot_association(ax, result: Association, design_coupling: float | None = None, label: str = "") -> None:
    """Block averages of the quantity against the projected void fraction, with the fitted coupling."""
    scale = 1e4 if result.quantity == "d" else 1.0
    ax.plot(result.void_fraction, result.values * scale, "o", ms=4, alpha=0.8, label=label or None)
    f = np.linspace(result.void_fraction.min(), result.void_fraction.max(), 2)
    q0, f0 = result.values.mean(), result.void_fraction.mean()
    if result.verdict == "association":
        ax.plot(f, (q0 + result.coupling * (f - f0)) * scale, "-", lw=1, color=ax.lines[-1].get_color())
    if design_coupling is not None and result.quantity == "d":
        ax.plot(f, (q0 + design_coupling * (f - f0)) * scale, "k--", lw=1)
    ax.set_xlabel("projected void fraction (CT)")
    ax.set_ylabel("Δd/d (1e-4, SXDM)" if result.quantity == "d" else "tilt deviation (deg, SXDM)")
