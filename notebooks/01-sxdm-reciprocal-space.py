# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Fig. S1: what does a 5-D SXDM data set look like, and how do detector frames become a 3-D reciprocal-space map?

# %% [markdown]
# ## Question
#
# An SXDM measurement at ESRF ID01 rasters a crystal through a ~100 nm X-ray beam with two piezos
# (pix, piy) and repeats the raster at each rocking angle eta; at every scan point and every eta the
# Maxipix records a frame. That is a 5-D data set (y, x, eta, row, column). How do we read it, what
# do the frames show, and how does one scan point's stack of frames become the 3-D reciprocal-space
# map of the paper's Fig. S1, whose centre of mass gives the local Q vector (d-spacing and tilt)?
#
# **Prerequisites:** [00-overview](00-overview.ipynb) (the 003 geometry). **Time to run:** ~30 s.

# %% [markdown]
# ## Setup

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np

import helpers
from helpers.paths import data_sample
from helpers.sxdm import geometry as sxdm_geometry
from helpers.sxdm import io, rsm_view
from helpers.synthetic import sxdm_samples

helpers.setup()

# %% tags=["parameters"]
# parameters: your own BLISS dataset file or XSOCS master file here, with truth = None
input_file = data_sample("sxdm_fig1_particle") / "sxdm_fig1_particle.h5"
truth = data_sample("sxdm_fig1_particle_truth.h5")  # None for your own data
detector = None  # e.g. "mpx1x4" when a file holds several detectors
roi = None  # (row0, row1, col0, col1) in full-detector pixels; None = the stored frames
geometry = None  # calibration overrides, e.g. {"distance_m": 1.6, "beam_center_px": (r, c)}
point = (20, 18)  # (slow, fast) scan point shown in the figures
q_grid_shape = (50, 100, 100)  # paper, SI: X (rocking) x Y (Debye ring) x Z (2θ)

# %% [markdown]
# ## Data
#
# The bundled sample is a simulated ID01 series of the paper's Fig. 1 particle (made by
# `helpers.synthetic`, `make data`), written in the real BLISS layout: one HDF5 *dataset* file with
# one `N.1` entry per eta, frames in per-scan detector files reached through HDF5 virtual datasets.
# The reader below (`helpers.sxdm.io.open_sxdm_series`) is the one that opens real ID01 and XSOCS
# files; it reads the geometry and positions now and streams frames later.

# %%
series = io.open_sxdm_series(input_file, detector=detector, roi=roi, geometry=geometry)
print(f"{len(series.scans)} SXDM entries ({series.scans[0]} … {series.scans[-1]}), title: {series.title}")
print(f"scan {series.scan_shape[0]} x {series.scan_shape[1]} points, {series.n_eta} eta from "
      f"{series.eta_deg[0]:.3f}° to {series.eta_deg[-1]:.3f}°, frames {series.frame_shape} (ROI {series.roi})")
print(f"λ = {series.wavelength_m * 1e10:.3f} Å, distance {series.distance_m:.2f} m, pixel "
      f"{series.pixel_size_m * 1e6:.0f} µm, delta = {series.delta_deg[0]:.3f}°, "
      f"{int(series.pixel_mask.sum())} masked pixels in the ROI")
print(f"5-D size: {series.n_points * series.n_eta * np.prod(series.frame_shape) * 4 / 1e9:.2f} GB as float32")

# %% [markdown]
# The simulated crystal is the paper's particle 1 (Fig. 1–2, the only striped one, measured with the
# 140 nm beam), the same model as particle 1 of notebook 03. Its **design inputs** (set, not measured):
# 3.2 × 2.6 µm, 1.2 µm thick; a total curvature of **0.8°** across its 3.2 µm length (paper: "≈ 0.8°"),
# i.e. R = 3.2 µm / 0.8° = 229 µm; the lattice turns about the sample x axis, so its tilt runs
# **north–south** in the pole figure; 0.44 µm stripes perpendicular to the bending; Δd/d = 4.2 × 10⁻⁴ as
# the 140 nm beam sees it.
#
# On the tilt direction the paper's SI says exactly: "in the tilt orientation maps all the particles
# are colored red-blue (with the exception of particle 1) and their tilts preferentially oriented
# east-west along the polar coordinate system" (and that rotating the sample by 90° "would align the
# bending of the particles into the north-south orientation"). It names no direction for particle 1;
# the main text adds only that its bending is one-directional and "orthogonal to the direction of the
# stripes". North–south is this model's reading of "the exception": the direction perpendicular to
# east–west, the peak moving along the Debye ring instead of the rocking direction.
# Below, the same quantities are measured back on the truth maps of the scan grid.

# %%
particle, truth, _ = sxdm_samples.load_truth(truth) if truth is not None else (None, None, None)
if truth is not None:
    design = sxdm_samples.truth_summary(truth, particle.design)
    print(f"design inputs: total curvature {particle.design['total_curvature_deg']:.2f}° over "
          f"{particle.design['size_um']:.1f} µm (R = {particle.design['bending_radius_um']:.0f} µm), bending "
          f"axis at {particle.design['bending_axis_angle_deg']:.0f}° from x")
    print(f"measured on the scan-grid truth: stripe period {design['stripe_period_um']:.3f} µm "
          f"(design 0.44), bending R {design['bending_radius_um']:.0f} µm, "
          f"Δd/d {design['d_spread_rel']:.2e} (design 4.2e-04)")

# %% [markdown]
# ## Method: the scan map
#
# Summing every good pixel of every frame of a scan point (normalised by the ion-chamber monitor)
# gives the integrated diffracted intensity: the particle's shape as the beam sees it. The frames are
# streamed in chunks of scan points, never holding the whole 5-D array.

# %%
intensity_map = rsm_view.integrated_intensity_map(series, points_per_chunk=200)
point_index = point[0] * series.scan_shape[1] + point[1]
print(f"integrated intensity: max {intensity_map.max():.0f} counts, at the chosen point "
      f"{intensity_map[point]:.0f} (x = {series.x_um[point]:.2f} µm, y = {series.y_um[point]:.2f} µm)")

# %% [markdown]
# ## Method: frames across the rocking curve
#
# At one scan point, each eta brings a different part of reciprocal space onto the detector (the
# Ewald sphere cuts the Bragg peak along the rocking direction X); a frame is a Qy–Qz slice. The
# rocking curve is the frame sum against eta.

# %%
frames = rsm_view.point_frames(series, point_index)
good = ~series.pixel_mask
rocking = frames[:, good].sum(axis=1)
peak_eta = int(np.argmax(rocking))
print(f"rocking curve peaks at eta = {series.eta_deg[peak_eta]:.3f}° "
      f"({rocking[peak_eta]:.0f} counts in that frame, {rocking.sum():.0f} in all)")

# %%
fig, axes = plt.subplots(1, 6, figsize=(13, 2.6), layout="constrained")
for ax, k in zip(axes, np.clip(peak_eta + np.array([-6, -3, -1, 0, 1, 3]), 0, series.n_eta - 1), strict=True):
    rsm_view.plot_frame(ax, frames[k], series.pixel_mask, vmax=frames[peak_eta].max())
    ax.set_title(f"eta {series.eta_deg[k]:.3f}°", fontsize=9)
plt.show()

# %% [markdown]
# ## Method: Q of every pixel and the 3-D map of one scan point
#
# `helpers.sxdm.geometry.pixel_q_vectors` turns (eta, phi, nu, delta, pixel) into Q in the sample
# frame with the ID01 / XSOCS convention (checked against xrayutilities to 10⁻⁶ in the tests). The
# 3-D centre of mass of the intensity over all pixels of all frames is the local Q vector; binning on
# the paper's 50 × 100 × 100 grid of the peak-frame axes (X rocking, Y Debye ring, Z along 2θ) gives
# the map of Fig. S1.

# %%
q = series.q_vectors()
com_q = rsm_view.centre_of_mass_q(frames, q, series.pixel_mask)
d_com = float(sxdm_geometry.d_from_q(com_q))
print(f"Q per pixel: {q.shape}, |Q| from {np.linalg.norm(q, axis=-1).min():.4f} to "
      f"{np.linalg.norm(q, axis=-1).max():.4f} 1/Å")
print(f"centre of mass Q = ({com_q[0]:.5f}, {com_q[1]:.5f}, {com_q[2]:.5f}) 1/Å → d = {d_com:.5f} Å")

# %%
rsm = rsm_view.bin_rsm(frames, q, series.pixel_mask, q_ref=com_q, shape=q_grid_shape,
                       phi_deg=float(series.phi_deg[0]))
filled = np.isfinite(rsm.intensity).mean()
print(f"RSM grid {rsm.intensity.shape}, {100 * filled:.1f} % of voxels hold a pixel; ΔQ ranges (10⁻³ 1/Å): "
      + ", ".join(f"{e[0] * 1e3:.2f}…{e[-1] * 1e3:.2f}" for e in rsm.edges))

# %% [markdown]
# With 20 eta maps against 50 bins along X, and a 64 × 120-pixel ROI against 100 bins along Y and Z, not
# every voxel receives a pixel: the grid is finer than the sampling, as in the paper's choice. The
# centre of mass is computed on the pixels themselves, so the binning does not bias it.

# %% [markdown]
# The simulation keeps the exact footprint-weighted mean Q of this scan point, so the centre of mass
# can be checked: the difference is the Poisson noise of a few thousand counts (σ ≈ 10⁻⁵ in d).

# %%
if truth is not None:
    d_truth = truth.mean_d_A[point]
    tilt_err = np.degrees(np.arccos(np.clip(com_q @ truth.mean_q[point] / np.linalg.norm(com_q)
                                            / np.linalg.norm(truth.mean_q[point]), -1, 1)))
    print(f"truth d = {d_truth:.5f} Å; centre of mass − truth: Δd/d = {d_com / d_truth - 1:.1e}, "
          f"direction {tilt_err:.4f}°")

# %%
if truth is not None:
    assert abs(d_com / d_truth - 1) < 5e-5, "3-D centre of mass must give d to the counting precision"
    assert tilt_err < 0.01, "and the Q direction to better than 0.01°"

# %% [markdown]
# ## Figure

# %%
fig, axes = plt.subplots(1, 4, figsize=(15, 3.6), layout="constrained")
image = rsm_view.plot_scan_map(axes[0], intensity_map, series.x_um, series.y_um, point=point)
fig.colorbar(image, ax=axes[0], label="counts (monitor-normalised)")
axes[0].set_title("scan map: integrated intensity")
images = rsm_view.plot_rsm_slices(axes[1:], rsm, com_q)
for ax, title in zip(axes[1:], ("YZ slice", "XZ slice", "XY slice"), strict=True):
    ax.set_title(f"{title} through the 3-D centre of mass (×)")
fig.suptitle("Fig. S1: one scan point of a 5-D SXDM data set as a 3-D reciprocal-space map")
helpers.save_figure(fig, "figS1_reciprocal_space_map")

# %% [markdown]
# Left: the particle as the beam sees it (the circle marks the scan point). Right: its 3-D
# reciprocal-space map around the centre of mass, in the paper's axes: Z (along 2θ) carries the
# d-spacing, X (rocking) and Y (Debye ring) the lattice orientation. The peak is elongated along Z
# because the footprint covers stripes of different d.

# %% [markdown]
# ## Explore
#
# Pick a scan point and an eta: the frame at that angle and the three slices of that point's 3-D map.
# Below the panel, its default state is stored for readers without a running kernel.

# %% tags=["nbval-ignore-output"]
from helpers.widgets import Explorer


def draw_point(fig, eta_index=peak_eta, slow=point[0], fast=point[1]):
    frames_here = rsm_view.point_frames(series, slow * series.scan_shape[1] + fast)
    com_here = rsm_view.centre_of_mass_q(frames_here, q, series.pixel_mask)
    rsm_here = rsm_view.bin_rsm(frames_here, q, series.pixel_mask, com_here, q_grid_shape)
    fig.set_layout_engine("constrained")
    axes = fig.subplots(1, 4)
    rsm_view.plot_frame(axes[0], frames_here[eta_index], series.pixel_mask)
    axes[0].set_title(f"eta {series.eta_deg[eta_index]:.3f}°, d = {sxdm_geometry.d_from_q(com_here):.5f} Å")
    rsm_view.plot_rsm_slices(axes[1:], rsm_here, com_here)


panel = Explorer(draw_point, figsize=(15, 3.4), eta_index=(0, series.n_eta - 1),
                 slow=(0, series.scan_shape[0] - 1), fast=(0, series.scan_shape[1] - 1))
panel.show()

# %%
panel.static()  # default state

# %% [markdown]
# ## Summary

# %%
summary = {
    "scan points x eta": f"{series.n_points} x {series.n_eta}",
    "frame (ROI) pixels": f"{series.frame_shape[0]} x {series.frame_shape[1]}",
    "d at the chosen point (Å)": f"{d_com:.5f}",
    "RSM grid (X, Y, Z)": "x".join(str(n) for n in rsm.intensity.shape),
}
if truth is not None:
    summary["centre of mass vs truth, Δd/d"] = f"{d_com / d_truth - 1:.1e}"
    summary["design input: total curvature (°)"] = f"{particle.design['total_curvature_deg']:.2f}"
    summary["truth maps: stripe period (µm)"] = f"{design['stripe_period_um']:.3f}"
    summary["truth maps: bending R (µm)"] = f"{design['bending_radius_um']:.0f}"
    summary["truth maps: Δd/d"] = f"{design['d_spread_rel']:.2e}"
for key, value in summary.items():
    print(f"{key:34s} {value}")

# %% [markdown]
# A 5-D SXDM data set is a stack of 2-D rasters, one per rocking angle, each scan point holding a
# Qy–Qz frame; with the ID01 geometry every pixel of every frame becomes a Q vector, and one scan
# point's frames form a 3-D reciprocal-space map whose centre of mass gives the local d-spacing to
# ~10⁻⁵ and the lattice direction to ~10⁻³ degree from a few thousand counts. The simulated particle
# reproduces the paper's numbers *by construction* (they are its design inputs): 0.44 µm stripes, one
# bending axis about x with 0.8° total curvature, Δd/d ≈ 4.2 × 10⁻⁴.
#
# **What's next:** [02-sxdm-strain-and-tilt](02-sxdm-strain-and-tilt.ipynb) does this for every scan
# point and maps strain and tilt. To use your own data, set `input_file` in the parameters cell to an
# ID01 BLISS dataset file (or an XSOCS master file) and `truth = None`.

# %% [markdown]
# ## References
#
# 1. I. Martens *et al.*, Imaging voids and defects inside Li-ion cathode LiNi₀.₆Mn₀.₂Co₀.₂O₂ single
#    crystals: Fig. S1 and the SI (50 × 100 × 100 q-grid, 3-D centre of mass).
# 2. G. A. Chahine *et al.*, Imaging of strain and lattice orientation by quick scanning X-ray
#    microscopy combined with three-dimensional reciprocal space mapping, *J. Appl. Cryst.* 47, 762 (2014)
#    (XSOCS, ID01 SXDM).
# 3. D. Kriegner, E. Wintersberger, J. Stangl, xrayutilities: a versatile tool for reciprocal space
#    conversion of scattering data, *J. Appl. Cryst.* 46, 1162 (2013).
# 4. J. Kieffer *et al.* / ESRF BLISS and Lima documentation: the dataset-file and detector-file layout.
