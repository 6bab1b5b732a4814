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
# # 09 · One crystal, two microscopes: are the voids where the lattice is strained?
#
# The paper closes with a question no tool answered: "the larger clusters of voids may be associated
# with the microstructure seen in both lattice parameter and orientation maps". SXDM (ID01) and
# nano-CT (ID16B) were analysed in separate programs and never on the same crystal. Here one simulated
# crystal is seen by both: its SXDM frames give d-spacing and tilt maps, its CT projections give the
# voids, the two are registered, and the association between projected void density and d / tilt is
# measured with an uncertainty — on a crystal whose coupling is known, and on a control without it.

# %% [markdown]
# ## Question
#
# Given the SXDM maps and the CT segmentation of one particle: where does the CT particle sit on the
# SXDM map (and how sure is that), and do regions with more voids have a larger d₀₀₃ or a different
# lattice tilt — by how much, with what interval, and is it more than chance?
#
# **Prerequisites:** notebooks 02 (SXDM maps), 05–08 (CT reconstruction, segmentation, voids).
# **Time to run:** ≈ 4 min on two cores the first time (simulating both scans of two crystals and six
# CT calibration phantoms), ≈ 30 s afterwards (cached).

# %% [markdown]
# ## Setup

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np

import helpers
from helpers import cli_correlate, correlate, correlate_figures, void_recovery
from helpers.paths import cache_dir
from helpers.sxdm.io import open_sxdm_series
from helpers.sxdm.reduce import reduce
from helpers.synthetic import correlative, correlative_calibration

helpers.setup()

# %% tags=["parameters"]
# parameters: your own SXDM series and CT scan of ONE particle here, with truth = None
sample = correlative.cached_sample(coupled=True)  # the simulated crystal (≈ 30 s the first time)
input_file = sample["sxdm"]  # ID01 SXDM series (BLISS dataset file) of the particle
truth = sample["truth"]  # None for your own data
detector, roi, geometry = None, None, None  # SXDM reader options (see notebook 01)
ct_file = sample["ct"]  # its nano-CT scan (NXtomo)
voxel_size_um = 0.025
dataset = "/volume_8bit"
ct_center_px = 79.5  # rotation axis of the CT scan (or "auto")
rough_alignment = (30.0, (1.5, -0.4))  # SXDM → CT: (angle in deg, (x, y) shift in µm), p_ct = R p + shift
projection_axis = 0  # CT volume axis along the SXDM beam (through the platelet's thickness)
block_um = 0.3  # block size of the statistics (> beam footprint and void clusters)
control = correlative.cached_sample(coupled=False)  # the same crystal type, coupling off (set None)

# %% [markdown]
# ## Data
#
# **The simulated crystal** (`helpers.synthetic.correlative`): a 2.7 × 2.1 µm, 1 µm thick NMC platelet
# in 3-D at 25 nm voxels. Oxygen-vacancy-rich regions (a smooth random field, correlation 0.18 µm)
# set the expected local void fraction f (up to 0.25, none within 0.1 µm of the surface); Kirkendall
# voids of 0.10–0.20 µm nucleate there (expected volume fraction f), and the same vacancies expand the
# lattice, **Δd/d = κ · f with κ = 2 × 10⁻³** (design input). The crystal is also bent about y
# (R = 1.5 mm), independently of the voids. The *control* crystal has the same laws but its lattice
# follows an independent vacancy field: nothing links its d to its voids.
#
# Both are rendered by the two forward models from the same 3-D object: SXDM frames in the ID01 layout
# (100 nm beam, 0.1 µm steps, the beam integrating the whole thickness), and a phase-contrast CT scan
# (NXtomo, 100 projections over 180°, Paganin-like propagation at 0.1 mm) of the crystal turned by a
# known angle and shifted on the CT grid.

# %%
design = correlative.read_truth(truth)["design"] if truth is not None else None
if design is not None:
    print(f"design inputs: coupling κ = {design['coupling']:.1e} (Δd/d per unit void fraction), "
          f"coupled = {design['coupled']}, voids {design['void_diameter_um'][0]:.2f}–"
          f"{design['void_diameter_um'][1]:.2f} µm, f ≤ {design['void_fraction_max']:.2f}")

# %% [markdown]
# ## Method: SXDM maps with the workbook's reduction
#
# The same call as notebook 02: 3-D centre of mass of every scan point's peak, d and tilt maps.

# %%
maps = reduce(open_sxdm_series(input_file, detector=detector, roi=roi, geometry=geometry), method="com",
              progress=False)
print(f"SXDM: {maps.shape[0]} x {maps.shape[1]} points, {int(maps.mask.sum())} in the mask, "
      f"d spread {np.nanstd(maps.d_spacing[maps.mask]) / maps.reference_d:.1e}")

# %% [markdown]
# ## Method: CT volume and voids with the workbook's commands
#
# `ct-reconstruct` (Paganin δ/β = 87, NUFFT FBP, 8-bit) and `ct-analyse` (particles, voids), exactly
# as from a shell. This crystal sits alone in air, so its grey histogram has two phases: the NMC
# threshold is Otsu's (`--threshold`), and voids are the air-grey voxels inside the particle.

# %%
work = cache_dir() / "correlative" / "work"
work.mkdir(parents=True, exist_ok=True)


def ct_chain(scan, name):
    return cli_correlate.run_ct_chain(scan, work, name, ct_center_px, dataset, voxel_size_um)


analysis_file, recon_file = ct_chain(ct_file, "coupled")
labels, grey, void_threshold, ct_voxel_um = correlate.read_ct_analysis(analysis_file, recon_file, dataset)
ct = correlate.ct_projection(labels, grey, void_threshold, ct_voxel_um, axis=projection_axis)
print(f"CT particle: {ct.envelope_um.shape} columns, mean void fraction "
      f"{ct.void_um.sum() / ct.envelope_um.sum():.3f}")

# %% [markdown]
# ## Method: registration
#
# The CT particle's projection along the SXDM beam (its NMC column length, voids excluded: what
# scatters), blurred by the beam footprint,
# is aligned rigidly onto the SXDM intensity (`correlate.register`: rotation + shift, started from the
# rough alignment, maximising the normalised cross-correlation). A match below NCC 0.9 stops here with
# a message instead of correlating noise.

# %%
initial = correlate.Alignment(rough_alignment[0], tuple(rough_alignment[1]))
reg = correlate.register(maps, ct, initial, footprint_fwhm_um=0.1)
a = reg.alignment
print(f"registered: angle {a.angle_deg:.2f}°, shift ({a.shift_um[0]:.3f}, {a.shift_um[1]:.3f}) µm; "
      f"NCC {reg.ncc:.3f}, relative residual {reg.residual_rel:.3f}")

# %%
if truth is not None:
    true_al = correlative.read_truth(truth)["alignment"]
    angle_err = a.angle_deg - true_al["angle_deg"]
    shift_err_nm = 1e3 * np.hypot(*(np.array(a.shift_um) - true_al["shift_um"]))
    print(f"registration error vs the known alignment: {angle_err:+.2f}°, {shift_err_nm:.0f} nm "
          f"(rough start was {rough_alignment[0] - true_al['angle_deg']:+.0f}° off)")
    assert abs(angle_err) < 0.5 and shift_err_nm < 50, "registration within half a scan step"

# %% [markdown]
# ## Method: association
#
# On the SXDM grid, the CT void fraction (void length / particle length per column, both blurred by
# the footprint) against Δd/d and against the tilt deviation, averaged over 0.3 µm blocks (larger
# than the footprint and the void clusters, so blocks are close to independent). Pearson r with a
# 95 % bootstrap interval (`scipy.stats.bootstrap`), a permutation test
# (`scipy.stats.permutation_test`), and the coupling var(q)/cov(q, f) — the regression of the void
# fraction on the SXDM quantity, which the CT's noise in f does not bias.

# %%
results = {q: correlate.association(maps, ct, a, q, block_um=block_um) for q in ("d", "tilt")}
for q, r in results.items():
    print(f"{q:4s}: r = {r.r:+.2f} [{r.r_ci[0]:+.2f}, {r.r_ci[1]:+.2f}], permutation p = {r.p_value:.4f}, "
          f"{r.n_blocks} blocks -> {r.verdict}")
k = results["d"]
print(f"coupling Δd/d per unit void fraction: {k.coupling:.2e} [{k.coupling_ci[0]:.2e}, {k.coupling_ci[1]:.2e}]")

# %%
if design is not None:
    assert k.verdict == "association" and results["tilt"].verdict == "no association"

# %% [markdown]
# ## Method: correcting the coupling for what the CT misses
#
# The coupling is measured per unit of *CT-measured* void fraction. Voids of 0.1–0.2 µm are 4–8
# voxels across, and the CT (Paganin blur, noise, threshold) recovers only part of their volume — the
# paper's "only 65–90 % of voids resolvable". If the CT keeps a share R of the void volume, the
# measured κ is the true one divided by R. The correction owes nothing to this particle's truth:
#
# 1. **Calibration** (`correlative_calibration.cached_calibration`, cached after the first run, ≈ 1.5 min):
#    six independent phantoms of the same crystal type (seeds 1000–1005, voids drawn over a wider
#    0.06–0.28 µm) through the same CT forward model, dose and chain; the voids the chain found are
#    scored against the voids rendered from their spheres: the detection curve r(d) (found void volume
#    within 2 voxels of each true void over its volume, by true diameter), and by measured diameter the
#    factor from measured to true diameter and the share of found volume that is a real void.
# 2. **Fold** (`void_recovery.estimate_recovery`): this particle's own void table (26-connected components
#    of its void voxels, as `ct-analyse` counts them), each measured diameter corrected to a true one,
#    folded with r(d): R = Σ p V / Σ p V / r(c·d). Its uncertainty is the fold's leave-one-out error over
#    the phantoms. A volume whose contrast-to-noise ratio lies outside the phantoms' (± 20 %) is refused.
# 3. **Corrected κ** = κ · R (`void_recovery.correct_coupling`); the interval's relative half-widths are
#    combined in quadrature with 1.96 σ_R / R.

# %%
calibration = correlative_calibration.cached_calibration()
particle_mask, found_voids, _ = correlate.found_void_mask(labels, grey, void_threshold, ct.label)
cnr = void_recovery.volume_cnr(grey, particle_mask, void_threshold)
try:
    recovery = void_recovery.estimate_recovery(calibration, found_voids, ct_voxel_um, cnr)
except void_recovery.CalibrationMismatch as err:  # own data taken otherwise: say so, keep the raw κ
    recovery, kc = None, None
    print(f"no recovery correction: {err}")
else:
    kc = void_recovery.correct_coupling(k, recovery)
    print(f"CT contrast-to-noise {cnr:.2f} (calibration phantoms {recovery.calibration_cnr[0]:.2f}–"
          f"{recovery.calibration_cnr[1]:.2f}); predicted void-volume recovery {recovery.recovery:.3f} ± "
          f"{recovery.sigma:.3f} ({recovery.n_phantoms} phantoms)")
    print(f"coupling per unit true void fraction: {kc.coupling:.2e} "
          f"[{kc.coupling_ci[0]:.2e}, {kc.coupling_ci[1]:.2e}]")

# %%
if truth is not None and recovery is not None:  # check only: the particle's actual recovery (truth)
    true_voids = correlative.true_ct_voids(truth)
    scored = void_recovery.void_detection_record(found_voids, true_voids, ct_voxel_um)
    actual = scored["true_found_vox"].sum() / scored["true_vox"].sum()
    print(f"check against the truth: actual recovery {actual:.3f} (predicted {recovery.recovery:.3f} ± "
          f"{recovery.sigma:.3f})")
    assert abs(recovery.recovery - actual) < 3 * recovery.sigma, "recovery predicted within 3 σ"
    assert kc.coupling_ci[0] <= design["coupling"] <= kc.coupling_ci[1], "design κ inside the corrected interval"

# %% [markdown]
# **What the correction does.** Over ten full-chain seeds of this design (seeds 0–9,
# `benchmarks/RESULTS_correlative_coverage.md`), the predicted recovery (0.86–0.90) missed each
# particle's actual one by −0.002 on average (rms 0.039, as the leave-one-out σ ≈ 0.035 says), and
# the design κ = 2 × 10⁻³ lay inside the raw 95 % interval on 6 of 10 seeds, inside the corrected one
# on 9 of 10; mean κ / design − 1: raw +0.27 ± 0.12, corrected +0.11 ± 0.11 (median 1.19 and 1.04).
# The one miss (seed 3) is the estimator's own scatter: even the perfect CT's voids give κ = 2.8 × 10⁻³
# there. Closing the envelope (a void whose thin wall to the surface broke stays a void) was added
# after seeds 0–4 showed such a cavity; seeds 5–9 were run only afterwards: raw 3 of 5, corrected
# 5 of 5.

# %% [markdown]
# The control crystal goes through the same chain: its d map has the same kind of structure, but from
# vacancies that made no voids.

# %%
if control is not None:
    maps_c = reduce(control["sxdm"], method="com", progress=False)
    labels_c, grey_c, thr_c, vox_c = correlate.read_ct_analysis(*ct_chain(control["ct"], "control"), dataset)
    ct_c = correlate.ct_projection(labels_c, grey_c, thr_c, vox_c, axis=projection_axis)
    reg_c = correlate.register(maps_c, ct_c, initial, footprint_fwhm_um=0.1)
    ctrl = correlate.association(maps_c, ct_c, reg_c.alignment, "d", block_um=block_um)
    envelope_c, voids_c, _ = correlate.found_void_mask(labels_c, grey_c, thr_c, ct_c.label)
    recovery_c = void_recovery.estimate_recovery(calibration, voids_c, vox_c,
                                             void_recovery.volume_cnr(grey_c, envelope_c, thr_c))
    print(f"control: NCC {reg_c.ncc:.3f}; r = {ctrl.r:+.2f} [{ctrl.r_ci[0]:+.2f}, {ctrl.r_ci[1]:+.2f}], "
          f"p = {ctrl.p_value:.3f} -> {ctrl.verdict}")
    print(f"control, corrected path: predicted recovery {recovery_c.recovery:.3f}; it rescales κ, not r or p: "
          f"{ctrl.verdict}")
    assert ctrl.verdict == "no association"

# %% [markdown]
# ## Figure
#
# Left: the SXDM intensity with the registered CT outline, and the residual. Right: the association —
# the coupled crystal (blue, its fitted coupling as a line, the design κ dashed) and the control
# (orange). The paper has no such figure: this is its closing question, answered on a known case.

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), layout="constrained")
correlate_figures.plot_registration(axes[:2], maps, reg)
correlate_figures.plot_association(axes[2], results["d"], design["coupling"] if design else None, "coupled")
if control is not None:
    correlate_figures.plot_association(axes[2], ctrl, None, "control")
axes[2].legend(fontsize=8)
helpers.save_figure(fig, "fig09_correlative_sxdm_nanoct")
plt.show()

# %% [markdown]
# ## Explore
#
# Change the block size and the SXDM quantity: the interval widens with fewer, larger blocks; blocks
# smaller than the void clusters are no longer independent and the interval becomes too narrow. The
# first figure below is the default state (0.3 µm, d).


# %% tags=["nbval-ignore-output"]
from helpers.widgets import Explorer


def draw_association(fig, block=block_um, quantity="d"):
    res = correlate.association(maps, ct, a, quantity, block_um=block)
    ax = fig.add_subplot()
    correlate_figures.plot_association(ax, res, design["coupling"] if design else None)
    ax.set_title(f"{res.n_blocks} blocks: r = {res.r:+.2f} [{res.r_ci[0]:+.2f}, {res.r_ci[1]:+.2f}]", fontsize=9)


panel = Explorer(draw_association, figsize=(4.5, 3.4), block=(0.2, 0.6, 0.05), quantity=["d", "tilt"])
panel.show()

# %%
panel.static()  # the widget's default state, stored for readers without a kernel

# %% [markdown]
# ## Summary

# %%
summary = {
    "registration NCC / relative residual": f"{reg.ncc:.3f} / {reg.residual_rel:.3f}",
    "measured: r(void fraction, Δd/d)": f"{k.r:+.2f} [{k.r_ci[0]:+.2f}, {k.r_ci[1]:+.2f}], p = {k.p_value:.4f}",
    "measured: coupling κ (per CT void fraction)": (
        f"{k.coupling:.2e} [{k.coupling_ci[0]:.2e}, {k.coupling_ci[1]:.2e}]"
    ),
    "measured: r(void fraction, tilt)": f"{results['tilt'].r:+.2f}, {results['tilt'].verdict}",
}
if recovery is not None:
    summary["measured: CT void-volume recovery (predicted)"] = f"{recovery.recovery:.3f} ± {recovery.sigma:.3f}"
    summary["measured: coupling κ, corrected"] = (
        f"{kc.coupling:.2e} [{kc.coupling_ci[0]:.2e}, {kc.coupling_ci[1]:.2e}]"
    )
if design is not None:
    summary["design input: coupling κ"] = f"{design['coupling']:.2e}"
    summary["measured: registration error (deg, nm)"] = f"{angle_err:+.2f}, {shift_err_nm:.0f}"
if control is not None:
    summary["measured: control r(void fraction, Δd/d)"] = f"{ctrl.r:+.2f}, {ctrl.verdict}"
for key, value in summary.items():
    print(f"{key:46s} {value}")

# %% [markdown]
# On a crystal built with a known link between voids and lattice expansion, the workbook's own chains
# (SXDM reduction; CT reconstruction, segmentation, voids) and a rigid registration, with the CT's
# void-volume recovery corrected from calibration phantoms, recover the designed coupling inside its
# 95 % interval on this seed, see no association with the tilt (the bending was made independent of
# the voids), and report "no association" on the control crystal.
# The raw κ is per CT-measured void fraction and biased high by the inverse of the CT's void-volume
# recovery; the corrected κ folds the CT's detection curve, measured on six independent calibration
# phantoms at the same dose, with the void sizes this CT measured on this particle, and no truth of
# the particle enters it (the truth only checks it). Over ten seeds its 95 % interval held the design
# on 9 (raw: 6). The sign, the verdict and the permutation p-value do not depend on the correction.
# **Limitations:** the calibration holds for the dose, voxel size and chain of its phantoms — a volume
# whose contrast-to-noise ratio lies outside theirs (± 20 %) is not corrected, and says so; it
# corrects the void volume the CT loses, not voids the segmentation cuts out of the particle in
# other ways. The coupling κ is a design input; the registration error, r, its interval, the
# p-value, the recovery and both κ are measured. With real data, the answer to the paper's question
# is the verdict and interval printed here.
#
# **What to try next:** your own data — reduce the SXDM series with `nmc-workbook sxdm-maps`, analyse
# the CT volume with `nmc-workbook ct-analyse`, then
# `nmc-workbook correlate maps.h5 analysis.h5 --volume recon.h5 --dataset /volume_8bit --angle-deg A
# --shift-um X Y --out correlation.h5` with a rough alignment (A, X, Y), or set the parameters cell.
#
# ## References
#
# 1. I. Martens *et al.*, Imaging voids and defects inside Li-ion cathode LiNi₀.₆Mn₀.₂Co₀.₂O₂ single
#    crystals: conclusion ("the larger clusters of voids may be associated with the microstructure seen
#    in both lattice parameter and orientation maps"), Fig. 1–2 (SXDM), Fig. 6 (voids).
# 2. B. Efron, R. Tibshirani, *An Introduction to the Bootstrap* (1993); SciPy `stats.bootstrap` and
#    `stats.permutation_test`.
# 3. M. Guizar-Sicairos, S. T. Thurman, J. R. Fienup, Efficient subpixel image registration
#    algorithms, *Opt. Lett.* 33, 156 (2008) (`skimage.registration.phase_cross_correlation`).
