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
# # 00 · Overview: what does this workbook reproduce, and what does the ID01 detector see of NMC 003?
#
# This workbook reproduces, end to end and in one Python environment, the X-ray analysis of
# Martens *et al.*, *Imaging voids and defects inside Li-ion cathode LiNi₀.₆Mn₀.₂Co₀.₂O₂ single crystals*:
# scanning X-ray diffraction microscopy (SXDM, ESRF ID01) strain, tilt and curvature maps, and
# phase-contrast nano-tomography (ESRF ID16B) with particle-morphology and internal-void statistics.

# %% [markdown]
# ## Question
#
# Before any data: at the paper's wavelength (1.24 Å) and detector distance (1.6 m), where does the
# NMC 003 reflection fall, how much d-spacing does one Maxipix frame cover, and is one detector pixel
# fine enough to resolve the paper's microstrain Δd/d = 4.2 × 10⁻⁴?
#
# **Prerequisites:** none. **Time to run:** a few seconds.

# %% [markdown]
# ## The workbook at a glance
#
# | notebook | question it answers | paper figures |
# |---|---|---|
# | [00-overview](00-overview.ipynb) | what is here, what data, how to run it on your own files | — |
# | [01-sxdm-reciprocal-space](01-sxdm-reciprocal-space.ipynb) | what a 5-D SXDM data set is; frames → 3-D reciprocal-space map per scan point | Fig. S1 |
# | [02-sxdm-strain-and-tilt](02-sxdm-strain-and-tilt.ipynb) | where is one crystal compressed, stretched, bent? | Fig. 1B–E, 2B–C, S2 |
# | [03-sxdm-particle-ensemble](03-sxdm-particle-ensemble.ipynb) | how different are eight crystals; can fused grains be separated by orientation? | Fig. 3, S3, S4, S5 |
# | [04-curvature-radius](04-curvature-radius.ipynb) | how bent is a crystal, as one number that ranks quality? | Fig. S6 |
# | [05-nanoct-reconstruction](05-nanoct-reconstruction.ipynb) | holotomography projections → quantitative 8-bit volume | Methods, SI SNR/CNR |
# | [06-nanoct-segmentation](06-nanoct-segmentation.ipynb) | which voxels are NMC, glue, air; which particle is which? | Fig. 4 |
# | [07-particle-morphology](07-particle-morphology.ipynb) | what shapes do the particles have? | Fig. 5, S7, Table S1 |
# | [08-internal-voids](08-internal-voids.ipynb) | how much of a "single crystal" is empty? | Fig. 6, S8 |
#
# **Data.** No raw frames of the paper are public. Every notebook runs on small samples in
# `data_samples/` made by the workbook's forward models (`helpers.synthetic`), which keep the exact
# truth, so each analysis step is checked against it. The same readers open real files:
#
# * **your own ID01 data**: a BLISS dataset file (`*.h5` with `N.1` entries from `asxdm`/`sxdm`/`kmap`
#   scans) or an XSOCS master file: set the path in notebook 02's *parameters* cell, or run
#   `nmc-workbook sxdm-maps YOUR_FILE.h5 --out maps.h5`;
# * **your own ID16B data**: an NXtomo/NeXus or Data Exchange HDF5 file, or a TIFF/EDF stack: set the
#   path in notebook 05's *parameters* cell, or run `nmc-workbook ct-reconstruct YOUR_FILE --out recon.h5`.
#
# **Running and testing.** `make reproduce` executes every notebook in order and writes every figure to
# `figures/` (or `$NMC_FIGURES_DIR`); `make test` runs the unit tests and re-executes each notebook,
# comparing its outputs with the stored ones (nbval); `make lab` opens JupyterLab in the workbook's
# environment.

# %% [markdown]
# ## Setup

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import pandas as pd

import helpers
from helpers import instrument, overview
from helpers.paths import data_sample
from helpers.sxdm.io import open_sxdm_series

helpers.setup()

# %% tags=["parameters"]
# parameters: your own ID01 file here (its wavelength is then used), with truth = None; the reflection
input_file = data_sample("sxdm_fig1_particle/sxdm_fig1_particle.h5")
truth = data_sample("sxdm_fig1_particle_truth.h5")  # None for your own data: the paper's checks are skipped
detector = None  # e.g. "mpx1x4" when a file holds several detectors
roi = None  # (row0, row1, col0, col1) in full-detector pixels
geometry = None  # calibration overrides, e.g. {"wavelength_m": 1.24e-10}
wavelength_angstrom = 1.24  # paper, Methods (replaced by the file's when input_file is not None)
c_angstrom = 14.214  # NMC-622 c lattice parameter (d003 = c / 3)
paper_microstrain = 4.2e-4  # paper, Fig. 1E

# %% [markdown]
# ## Data
#
# The instrument constants of `helpers.instrument`, each with its unit and source (paper, derived, or
# the workbook's estimate); the wavelength is read from `input_file` when one is given.

# %%
if input_file is not None:
    series = open_sxdm_series(input_file, detector=detector, roi=roi, geometry=geometry)
    wavelength_angstrom = round(series.wavelength_m * 1e10, 6)
    print(f"{series.path.name}: λ = {wavelength_angstrom} Å, detector {series.detector} "
          f"{series.detector_shape[0]} × {series.detector_shape[1]} px")
id01 = instrument.ID01(wavelength_angstrom=wavelength_angstrom)
nmc003 = instrument.NMC003(c_angstrom=c_angstrom)
print(f"ID01: λ = {id01.wavelength_angstrom} Å (E = {id01.energy_kev:.3f} keV), "
      f"Maxipix {id01.detector_shape_px[0]}² × {id01.pixel_size_um:.0f} µm at {id01.distance_m} m")
pd.DataFrame(instrument.describe(id01))

# %%
id16b = instrument.ID16B()
pd.DataFrame(instrument.describe(id16b))

# %% [markdown]
# ## Method: Bragg geometry of the 003 reflection
#
# Bragg's law λ = 2 d sin θ gives where the 003 peak sits; the detector's angular width (516 pixels of
# 55 µm at 1.6 m) sets the d-spacing window of one frame, and the angle of one pixel sets the d
# resolution along 2θ (the paper's Z direction).

# %%
two_theta = float(instrument.bragg_two_theta_deg(nmc003.d_angstrom, id01.wavelength_angstrom))
lo, hi = instrument.detector_two_theta_window_deg(id01, two_theta)
print(f"d003 = {nmc003.d_angstrom:.4f} Å, |Q| = {nmc003.q_inv_angstrom:.4f} 1/Å, "
      f"2θ = {two_theta:.3f}°, θ = {two_theta / 2:.3f}°")
print(f"one frame spans 2θ = {lo:.3f}° … {hi:.3f}° ({hi - lo:.3f}°)")

# %%
strain_map = overview.detector_strain_map(id01, nmc003)
pixel_strain = overview.strain_per_pixel(id01, nmc003)
print(f"strain window of one frame: {strain_map.min():.2e} … {strain_map.max():.2e}")
print(f"Δd/d per detector row: {pixel_strain:.2e}; "
      f"paper microstrain {paper_microstrain:.1e} = {paper_microstrain / pixel_strain:.1f} pixels")

# %% [markdown]
# The paper's microstrain spans a few pixels along 2θ, so one frame resolves it, and the whole
# particle's d distribution (a few 10⁻³) fits on the detector with room to spare. Sub-pixel precision
# on each scan point's peak comes from the centre of mass over many pixels (notebooks 01–02).

# %%
if truth is not None:  # checks of the paper's configuration (the bundled sample's)
    assert 0.03 < strain_map.max() < 0.04, "one frame spans about ±3.3 % in d"
    assert 2 <= paper_microstrain / pixel_strain <= 5, "microstrain should span a few pixels"
    assert abs(two_theta - 15.04) < 0.01, "2θ(003) = 15.04° at 1.24 Å"

# %% [markdown]
# ## Figure

# %%
fig, (ax_det, ax_tt) = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained")
image = overview.plot_detector_strain(ax_det, id01, nmc003, microstrain=paper_microstrain)
fig.colorbar(image, ax=ax_det, label="strain ε (10⁻³)")
overview.plot_two_theta_vs_d(ax_tt, id01, nmc003)
fig.suptitle("NMC 003 at ID01: the detector frame is a Qy–Qz slice; rows carry d")
helpers.save_figure(fig, "fig00_id01_003_geometry")

# %% [markdown]
# Left: the strain ε = d/d₀₀₃ − 1 each pixel records when the frame is centred on the 003 peak;
# dashed, the Debye-ring arc of d₀₀₃; solid, ±½ of the paper's microstrain. The arc's curvature is
# why the workbook computes q per pixel exactly instead of assuming rows of constant d. Right: 2θ
# against d, with the detector window shaded.

# %% [markdown]
# ## Explore
#
# Change the wavelength or the c parameter and see where the reflection moves and how the detector's
# strain window changes. The controls redraw the figure in place; below the panel, its default state
# is stored for readers without a running kernel.

# %% tags=["nbval-ignore-output"]
from helpers.widgets import Explorer


def draw_detector(fig, wavelength=1.24, c=14.214):
    ax = fig.add_subplot()
    image = overview.plot_detector_strain(
        ax, instrument.ID01(wavelength_angstrom=wavelength), instrument.NMC003(c_angstrom=c)
    )
    fig.colorbar(image, ax=ax, label="strain ε (10⁻³)")


panel = Explorer(draw_detector, figsize=(5, 4), wavelength=(0.8, 2.0, 0.02), c=(14.1, 14.3, 0.005))
panel.show()

# %%
panel.static()  # default state

# %% [markdown]
# ## Summary

# %%
summary = {
    "2θ(003) at 1.24 Å (deg)": round(two_theta, 3),
    "|Q|(003) (1/Å)": round(nmc003.q_inv_angstrom, 4),
    "Δd/d per pixel": float(f"{pixel_strain:.3g}"),
    "frame strain window (±)": float(f"{max(-strain_map.min(), strain_map.max()):.3g}"),
    "paper SNR, CNR (ID16B)": (round(id16b.paper_snr, 2), round(id16b.paper_cnr, 2)),
}
for key, value in summary.items():
    print(f"{key:28s} {value}")

# %% [markdown]
# The 003 reflection sits at 2θ = 15.04°; one Maxipix frame covers about ±3.3 × 10⁻² in strain
# with 1.3 × 10⁻⁴ per pixel, so the paper's 4.2 × 10⁻⁴ microstrain spans about three pixels.
#
# **What's next:** [01-sxdm-reciprocal-space](01-sxdm-reciprocal-space.ipynb) opens a 5-D SXDM data set.

# %% [markdown]
# ## References
#
# 1. I. Martens *et al.*, Imaging voids and defects inside Li-ion cathode LiNi₀.₆Mn₀.₂Co₀.₂O₂ single
#    crystals (main text and SI): instrument numbers of ID01 and ID16B.
# 2. G. A. Chahine *et al.*, Imaging of strain and lattice orientation by quick scanning X-ray
#    microscopy combined with three-dimensional reciprocal space mapping, *J. Appl. Cryst.* 47, 762 (2014).
# 3. G. Martínez-Criado *et al.*, ID16B: a hard X-ray nanoprobe beamline at the ESRF,
#    *J. Synchrotron Rad.* 23, 344 (2016).
