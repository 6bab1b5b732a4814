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
# # 05 · Nano-CT (Methods, SI): how do holotomography projections become a quantitative 8-bit volume?
#
# The paper imaged the NMC-622 powder at ESRF ID16B: 29.6 keV, 25 nm voxels, 3203 projections over
# 360° at four focus-to-sample distances, a "Paganin-like" phase retrieval with δ/β = 87, filtered
# back-projection, ring removal and a 32 → 8-bit conversion; it quotes SNR 8.8 and CNR 2.3.

# %% [markdown]
# ## Question
#
# Starting from raw detector frames (projections, flats, darks at four distances), which steps turn
# them into a volume whose grey values are the refractive-index decrement δ of air, glue and NMC — and
# how close does each step get to the exact truth of a simulated powder?
#
# **Prerequisites:** notebook 00. **Time to run:** about 20 s on two cores (a 24 × 128 × 128 sample);
# the full-size path is an edit of the *parameters* cell (your own NXtomo file, or
# `nmc-workbook ct-reconstruct` out-of-core).

# %% [markdown]
# ## Setup

# %%
# %matplotlib inline
import h5py
import ipywidgets
import matplotlib.pyplot as plt
import numpy as np
from scipy import ndimage

import helpers
from helpers.instrument import ID16B
from helpers.nanoct import grey, io, phase, recon, rings
from helpers.paths import data_sample, save_figure

helpers.setup()
id16b = ID16B()

# %% tags=["parameters"]
SCAN_FILE = "ct_powder_holotomo.h5"  # NXtomo, one entry per distance (or your own file path)
TRUTH_FILE = "ct_powder_truth.h5"  # set to None for real data
DELTA_BETA = 87.0  # paper
RING_METHOD = "filtering"  # none | sorting | filtering | all | munch
RECON_METHOD = "gridding"  # gridding (NUFFT) | fbp | algotom_fbp | dfi | gridrec (tomopy) | skimage
SLICES = (4, 20)  # detector rows to reconstruct
SHOW_SLICE = 8  # index within SLICES shown in the figures

# %% [markdown]
# ## Data
#
# The bundled scan was made by `helpers.synthetic` (see `data_samples/README.md`): a powder phantom of
# faceted NMC crystals (17 % with internal voids) in glue and air, projected exactly, propagated to four
# distances, recorded with a non-uniform beam, per-pixel gain errors and Poisson noise at the paper's
# SNR. Real NXtomo or Data Exchange files open with the same readers.

# %%
path = data_sample(SCAN_FILE)
scans = [io.read_nxtomo(path, entry) for entry in io.list_nxtomo_entries(path)]
n_proj, n_rows, n_cols = scans[0].shape
distances = [s.distance_m for s in scans]
print(
    f"{len(scans)} distances {[f'{z * 1e3:.2f}' for z in distances]} mm; {n_proj} projections "
    f"of {n_rows}×{n_cols} px over {np.degrees(np.ptp(scans[0].angles_rad)) + 360 / n_proj:.0f}°; "
    f"pixel {scans[0].pixel_size_m * 1e9:.0f} nm, {scans[0].energy_kev:.1f} keV"
)

# %%
if TRUTH_FILE:
    with h5py.File(data_sample(TRUTH_FILE)) as t:
        truth_delta = t["delta"][SLICES[0] : SLICES[1]]
        truth_phase = t["phase"][SLICES[0] : SLICES[1]]
        delta_nmc, delta_glue = t.attrs["delta_NMC"], t.attrs["delta_glue"]
    print(f"truth: δ_NMC = {delta_nmc:.3g}, δ_glue = {delta_glue:.3g}, β_NMC = δ/{DELTA_BETA:.0f}")

# %% [markdown]
# ## Raw frames, flat field and SNR
#
# The paper's SNR is mean(ROI)/σ(background) on a raw projection. We take the ROI inside the sample
# and the background in the open beam beside the pillar (boxes drawn below).

# %%
raw = scans[0].read_frames(0, 1)[0] - scans[0].dark_mean()
flat = scans[0].flat_mean() - scans[0].dark_mean()
roi_box, bg_box = ((4, 20), (54, 74)), ((4, 20), (0, 4))
snr_raw = grey.snr(raw, roi_box, bg_box)
print(
    f"SNR on the raw projection = {snr_raw:.1f}  (paper: {id16b.snr_mean_nmc:.0f}/{id16b.snr_sigma_air:.0f} "
    f"= {id16b.paper_snr:.2f})"
)


# %%
def draw_box(ax, box, color):
    (r0, r1), (c0, c1) = box
    ax.add_patch(plt.Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0, r1 - r0, fill=False, ec=color, lw=1.5))


fig, axes = plt.subplots(1, 2, figsize=(9, 2.4))
for ax, img, title in zip(axes, (raw, flat), ("raw projection − dark", "flat − dark"), strict=True):
    ax.imshow(img, cmap="gray")
    ax.set_title(title)
draw_box(axes[0], roi_box, "tab:orange")
draw_box(axes[0], bg_box, "tab:cyan")
plt.show()

# %%
transmission = [io.flat_dark_correct(s.read_projections(), s.flat_mean(), s.dark_mean()) for s in scans]
print(
    f"mean transmission {transmission[0].mean():.4f}: NMC absorbs only "
    f"{100 * (1 - np.exp(-4 * np.pi * delta_nmc / DELTA_BETA * 1e-6 / 0.41887e-10)):.2f} % per µm at 29.6 keV"
)

# %% [markdown]
# ## Phase retrieval: Paganin with δ/β = 87 and the four-distance CTF
#
# Paganin (single distance, homogeneous object) returns the projected δ, D = ∫δ dt. At 25 nm pixels
# its low-pass is wide: √(πλz·δ/β) = 43 px at 0.1 mm (136 px at 1 mm). The four-distance CTF uses the
# stage positions recorded per distance to align them (phase correlation is also available:
# `phase.register_distances`).

# %%
pixel, energy = scans[0].pixel_size_m, scans[0].energy_kev
print(
    f"Paganin length at z = {distances[0] * 1e3:.2f} mm: "
    f"{phase.paganin_length_px(DELTA_BETA, energy, distances[0], pixel):.0f} px"
)
d_paganin = phase.paganin(transmission[0], DELTA_BETA, energy, distances[0], pixel)
t0 = np.array(scans[0].translation_px)
shifts = [tuple(-(np.array(s.translation_px) - t0)) for s in scans]
d_ctf = phase.ctf_multi(transmission, DELTA_BETA, energy, distances, pixel, shifts_px=shifts)
print(f"retrieved D: Paganin max {d_paganin.max():.2e}, CTF max {d_ctf.max():.2e} (δ·pixels)")

# %% [markdown]
# ## Rings and reconstruction
#
# A detector pixel whose gain changed between flats and projections makes a vertical stripe in the
# sinogram and a ring in the slice. `rings.remove_rings` wraps algotom (Vo) and nabu (Münch).
# `recon.reconstruct` returns, for every backend, the same orientation and gain 1; the sinogram holds
# D in pixels, so the slice holds δ. The centre of rotation is found from the 360° data.
# The default backend, `"gridding"`, is the workbook's filtered back-projection evaluated in Fourier
# space (finufft's adjoint non-uniform FFT, O(N_θ·n + n² log n) instead of O(N_θ·n²)): at the paper's
# 2048 px × 3203 angles it takes about a second per slice where the direct back-projector (`"fbp"`)
# takes ≈ 20 s, and the two agree to ≈ 0.1 % (checked on this slice below).

# %%
rows = range(SLICES[0], SLICES[1])
angles = scans[0].angles_rad
center = recon.find_center(d_paganin[:, n_rows // 2], angles)
print(f"centre of rotation {center:.2f} px (detector middle {(n_cols - 1) / 2:.1f})")
sino = d_paganin[:, SLICES[0] + SHOW_SLICE]
sino_clean = rings.remove_rings(sino, RING_METHOD)
slice_fbp = recon.reconstruct(sino_clean, angles, center, "fbp")
slice_grid = recon.reconstruct(sino_clean, angles, center, "gridding")
grid_vs_fbp = recon.nrmse(slice_grid, slice_fbp, recon.disk_mask(n_cols, 0.44))
print(f"gridding vs direct back-projection on this slice: NRMSE {100 * grid_vs_fbp:.1f} %")
assert grid_vs_fbp < 0.01  # the same FBP (tests: 0.23 % on exact data; here noise at 180 angles)


# %%
def reconstruct_stack(projected, ring_method):
    return np.stack(
        [
            recon.reconstruct(rings.remove_rings(projected[:, r], ring_method), angles, center, RECON_METHOD)
            for r in rows
        ]
    )


vol_raw = reconstruct_stack(d_paganin, "none")
vol_paganin = reconstruct_stack(d_paganin, RING_METHOD)
vol_ctf = reconstruct_stack(d_ctf, RING_METHOD)

# %%
disk = recon.disk_mask(n_cols, 0.44)[None]
for name, vol in (
    ("Paganin, no ring removal", vol_raw),
    ("Paganin + rings", vol_paganin),
    ("CTF ×4 + rings", vol_ctf),
):
    means = [vol[(truth_phase == p) & disk].mean() for p in (2, 1, 0)]
    print(
        f"{name:26s} NRMSE {recon.nrmse(vol, truth_delta, np.broadcast_to(disk, vol.shape)):.2f}  "
        f"NMC {means[0]:.2e}  glue {means[1]:.2e}  air {means[2]:.2e}  contrast/truth: "
        f"NMC−air {(means[0] - means[2]) / delta_nmc:.2f}, glue−air {(means[1] - means[2]) / delta_glue:.2f}"
    )

# %%
nmc_mean = vol_paganin[(truth_phase == 2) & disk].mean()
assert abs(nmc_mean / delta_nmc - 1) < 0.2  # δ of NMC recovered to 20 % at the paper's SNR
phase_means = [vol_paganin[(truth_phase == p) & disk].mean() for p in (2, 1, 0)]
assert phase_means[0] > phase_means[1] > phase_means[2]  # three ordered grey phases
for vol in (vol_paganin, vol_ctf):  # NMC−air contrast within 30 % of the truth for both retrievals
    contrast = vol[(truth_phase == 2) & disk].mean() - vol[(truth_phase == 0) & disk].mean()
    assert abs(contrast / delta_nmc - 1) < 0.3

# %% [markdown]
# The absolute level (the mean δ of a slice) is the fragile part: it comes from absorption, 0.37 % per
# µm here, comparable to flat-field errors, so Paganin lifts every phase and the CTF lowers them. The
# contrasts between phases — what segmentation uses — come out at about 80 % of the truth for both.

# %% [markdown]
# ## 8-bit conversion, CNR and the grey histogram
#
# The 32-bit volume is mapped to 8 bits through a window stored with the data (0.1/99.9 percentiles
# here), so grey values map back: δ = low + g/255 · (high − low). CNR = (mean(ROI) − mean(bg))/σ(bg)
# on the 32-bit volume, with the ROI in NMC and the background in air (interiors, 2 voxels from any
# boundary, taken from the truth here; boxes on real data).

# %%
window = grey.percentile_window(vol_paganin)
vol8 = window.to_8bit(vol_paganin)
nmc_roi = ndimage.binary_erosion(truth_phase == 2, iterations=2) & disk
air_bg = ndimage.binary_erosion(truth_phase == 0, iterations=2) & disk
cnr = grey.cnr(vol_paganin, nmc_roi, air_bg)
print(
    f"window [{window.low:.3g}, {window.high:.3g}] → 0…255; CNR(NMC vs air) = {cnr:.2f} "
    f"(paper: ({id16b.snr_mean_nmc:.0f} − {id16b.snr_mean_air:.0f})/{id16b.snr_sigma_air:.0f} = {id16b.paper_cnr:.2f})"
)
print(
    f"8-bit round trip error ≤ {np.abs(window.to_32bit(vol8) - np.clip(vol_paganin, window.low, window.high)).max():.2e}"
    f" (half a grey step = {(window.high - window.low) / 510:.2e})"
)

# %% [markdown]
# ## Figure

# %%
fig, axes = plt.subplots(2, 3, figsize=(11, 7))
k = SHOW_SLICE
vmin, vmax = -0.5 * delta_nmc, 1.6 * delta_nmc
panels = [
    (sino, "sinogram (Paganin D)"),
    (sino_clean, f"sinogram after '{RING_METHOD}'"),
    (truth_delta[k], "truth δ"),
    (vol_raw[k], "slice, no ring removal"),
    (vol_paganin[k], "slice, Paganin δ/β = 87 + rings"),
    (vol_ctf[k], "slice, CTF 4 distances"),
]
for ax, (img, title) in zip(axes.ravel(), panels, strict=True):
    kw = {"aspect": "auto"} if img.shape[0] != img.shape[1] else {"vmin": vmin, "vmax": vmax}
    ax.imshow(img, cmap="gray", **kw)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
save_figure(fig, "methods_nanoct_reconstruction")
plt.show()

# %%
fig, ax = plt.subplots(figsize=(6, 3))
for p, name, color in ((0, "air", "tab:cyan"), (1, "glue", "tab:green"), (2, "NMC", "tab:orange")):
    ax.hist(
        vol8[(truth_phase == p) & disk].ravel(),
        bins=64,
        range=(0, 255),
        histtype="step",
        color=color,
        label=name,
    )
ax.hist(vol8[np.broadcast_to(disk, vol8.shape)].ravel(), bins=64, range=(0, 255), color="0.8", label="all")
ax.set_xlabel("8-bit grey value")
ax.set_ylabel("voxels")
ax.legend()
save_figure(fig, "si_grey_histogram")
plt.show()

# %% [markdown]
# ## Explore
#
# Change δ/β of the Paganin retrieval: small values keep edges sharp but leave phase fringes; large
# values blur. The paper's 87 is the value for NMC at 29.6 keV (β = δ/87). Below the panel, its
# default state is stored for readers without a running kernel.

# %% tags=["nbval-ignore-output"]
from helpers.widgets import Explorer


def draw_delta_beta(fig, delta_beta=87.0):
    d = phase.paganin(transmission[0][:, SLICES[0] + SHOW_SLICE], delta_beta, energy, distances[0], pixel)
    ax = fig.add_subplot()
    ax.imshow(recon.reconstruct(d, angles, center, RECON_METHOD), cmap="gray")
    ax.set_title(f"δ/β = {delta_beta:.0f}")


panel = Explorer(draw_delta_beta, figsize=(4, 4),
                 delta_beta=ipywidgets.FloatLogSlider(value=87, base=10, min=0, max=3.5))
panel.show()

# %%
panel.static()  # default state

# %% [markdown]
# ## Summary
#
# From raw frames to an 8-bit volume, every step is a named function: `io.read_nxtomo` →
# `io.flat_dark_correct` → `phase.paganin` (δ/β = 87) or `phase.ctf_multi` (four distances) →
# `rings.remove_rings` → `recon.reconstruct` → `grey.Window`. With the paper's SNR (≈ 9 per raw pixel)
# the Paganin volume recovers δ of NMC to within 20 % (printed above), the contrasts NMC−air and
# glue−air to about 80 % with Paganin and with the four-distance CTF, the three phases keep their
# order, and the CNR (1.8) is of the paper's order (2.3). The absolute level comes from absorption,
# only ≈ 0.37 % per µm of NMC at 29.6 keV: Paganin lifts all phases, the CTF lowers them. At this
# noise and 180 projections the three phases overlap in the 8-bit histogram; the paper had 3203
# projections per distance (≈ 4× less noise per voxel) and particles 5× larger in voxels. On your own
# data: set `SCAN_FILE` to your NXtomo file, or run
# `nmc-workbook ct-reconstruct scan.nx --out recon.h5 --phase paganin --rings filtering`
# (out-of-core, resumable; memory bound stored in the output). Next: notebook 06 segments the phases.

# %% [markdown]
# ## References
#
# - Martens *et al.*, NMC-622 single crystals imaged by SXDM and nano-CT (paper in `shared/paper/`).
# - D. Paganin *et al.*, J. Microsc. 206, 33 (2002) — single-distance phase retrieval.
# - P. Cloetens *et al.*, Appl. Phys. Lett. 75, 2912 (1999); S. Zabler *et al.*, Rev. Sci. Instrum. 76,
#   073705 (2005) — holotomography, multi-distance CTF.
# - N. T. Vo *et al.*, Opt. Express 26, 28396 (2018) — ring removal (algotom); B. Münch *et al.*,
#   Opt. Express 17, 8567 (2009).
# - nabu (ESRF), algotom, scikit-image documentation.
