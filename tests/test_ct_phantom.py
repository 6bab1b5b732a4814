"""The nano-CT powder phantom: its truth table agrees with its voxels, and it has the paper's statistics."""

import numpy as np
import pytest
from scipy import ndimage

from helpers.synthetic import ct_phantom as ctp


@pytest.fixture(scope="module")
def phantom():
    return ctp.make_powder_phantom((112, 112, 112), rng=3)


def test_phantom_is_a_deterministic_function_of_its_seed():
    a = ctp.make_powder_phantom((48, 48, 48), rng=7, n_particles=6)
    b = ctp.make_powder_phantom((48, 48, 48), rng=7, n_particles=6)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.phase, b.phase)


def test_arrays_are_consistent_phase_by_phase(phantom):
    """NMC ⇔ labelled solid; voids are air, inside their owner, and fully enclosed (no surface contact)."""
    assert phantom.labels.dtype == np.int32 and phantom.phase.dtype == np.uint8
    np.testing.assert_array_equal(phantom.phase == ctp.NMC, phantom.labels > 0)
    assert not np.any(phantom.labels[phantom.void_mask])
    assert np.all(phantom.phase[phantom.void_mask] == ctp.AIR)
    np.testing.assert_array_equal(phantom.void_mask, phantom.void_owner > 0)
    filled = phantom.filled_labels()
    for lab in phantom.truth.loc[phantom.truth.has_voids, "label"]:
        solid = phantom.labels == lab
        np.testing.assert_array_equal(ndimage.binary_fill_holes(solid), filled == lab)


def test_truth_table_matches_the_voxels(phantom):
    truth, v = phantom.truth, phantom.voxel_size_um**3
    counts = np.bincount(phantom.labels.ravel(), minlength=len(truth) + 1)[1:]
    np.testing.assert_allclose(truth.volume_um3.to_numpy(), counts * v, rtol=1e-12)
    void_counts = np.bincount(phantom.void_owner.ravel(), minlength=len(truth) + 1)[1:]
    np.testing.assert_allclose(truth.void_fraction, void_counts / (counts + void_counts), rtol=1e-12)
    np.testing.assert_allclose(truth.d_eq_um, (6 * truth.filled_volume_um3 / np.pi) ** (1 / 3), rtol=1e-12)
    assert not truth.touches_border.any()
    # each particle is one 6-connected object
    for lab in truth.label[:20]:
        _, n = ndimage.label(phantom.filled_labels() == lab)
        assert n == 1


def test_powder_statistics_follow_the_paper(phantom):
    """Shares and medians the generator draws, measured back from the voxels.

    Defective share: the generator picks round(0.17 N) particles, so it is exact to ±1/N. Elongation
    medians are drawn at 0.80 and 0.70 (paper Table S1) with σ ≈ 0.1; the median of ~200 draws has a
    standard error ≈ 1.25·0.1/√200 ≈ 0.01, plus voxelisation: ±0.05 allows both. The volume-weighted
    median d comes from a few dozen volume-dominant particles (and large ones are harder to place):
    ±25 % of the target.
    """
    truth = phantom.truth
    n = len(truth)
    assert n > 100
    assert truth.has_voids.mean() == pytest.approx(0.17, abs=1.0 / n + 1e-9)
    defective = truth[truth.has_voids]
    assert (defective.void_fraction >= 0.10).all()
    assert (truth.loc[~truth.has_voids, "void_fraction"] == 0).all()
    assert truth.is_aggregate.any() and (truth.loc[truth.is_aggregate, "n_grains"] >= 2).all()
    assert truth.e_yx.median() == pytest.approx(0.80, abs=0.05)
    assert truth.e_zy.median() == pytest.approx(0.70, abs=0.05)
    d50 = ctp.volume_weighted_median_um(truth.d_eq_um)
    assert d50 == pytest.approx(phantom.params["d50_volume_um_target"], rel=0.25)
    fractions = phantom.volume_fractions()
    assert 0.2 < fractions["NMC"] < 0.45 and fractions["glue"] > 0.2 and fractions["air"] > 0.2


def test_voids_are_50_to_300_nm():
    """Each void is a ball of diameter 50–300 nm; clusters may merge, so the smallest component counts.

    A 50 nm ball at 25 nm voxels (r = 1 voxel) has 7 voxels; no component can be smaller.
    """
    import cc3d

    ph = ctp.make_powder_phantom((96, 96, 96), rng=11)
    comps = cc3d.connected_components(ph.void_mask, connectivity=6)
    sizes = np.bincount(comps.ravel())[1:]
    assert sizes.size > 0 and sizes.min() >= 7
    largest_single = np.pi / 6 * (0.30 / ph.voxel_size_um + 1) ** 3
    assert np.median(sizes) <= largest_single


def test_refractive_indices_at_29_6_kev():
    table = ctp.refractive_indices(29.6)
    assert table.loc["NMC", "delta"] == pytest.approx(1.05e-6, rel=0.03)  # WORKBOOK §3 estimate
    assert table.loc["NMC", "delta"] / table.loc["NMC", "beta"] == pytest.approx(87.0)
    assert 0.2e-6 < table.loc["glue", "delta"] < 0.6e-6
    assert table.loc["air", "delta"] == 0.0
    assert table.source.str.len().min() > 5


def test_grey_volume_has_the_requested_cnr_and_a_reversible_window(phantom):
    """Measured CNR on eroded phase interiors (away from the blur) equals the requested one within 5 %.

    The noise σ is set on the whole field; the 8-bit rounding adds (Δ/√12)² ≈ 0.3 % of σ² here.
    """
    grey = ctp.phantom_to_grey_8bit(phantom, rng=0, cnr=3.0)
    g32 = grey.to_grey32()
    nmc = ndimage.binary_erosion(phantom.phase == ctp.NMC, iterations=3)
    air = ndimage.binary_erosion(phantom.phase == ctp.AIR, iterations=3)
    cnr = (g32[nmc].mean() - g32[air].mean()) / g32[air].std()
    assert cnr == pytest.approx(3.0, rel=0.05)
    assert g32[nmc].mean() == pytest.approx(grey.phase_means_32["NMC"], abs=0.05 * grey.noise_sigma_32)
    assert grey.window[0] < grey.phase_means_32["air"] < grey.phase_means_32["glue"] < grey.window[1]


@pytest.mark.parametrize("kwargs", [{"shape_vox": (8, 64, 64)}, {"voxel_size_um": 0.0}])
def test_bad_phantom_parameters_are_refused(kwargs):
    with pytest.raises(ValueError, match="shape_vox|voxel_size_um"):
        ctp.make_powder_phantom(**{"shape_vox": (48, 48, 48), **kwargs})


# ---------------------------------------------------------------- forward model (ct_projections)
def test_projector_conserves_mass_and_matches_exact_line_integrals():
    """Σ_s p(θ, s) = Σ f for every angle (the integral of a projection is the mass), and a voxelised
    disk's projection matches the exact chord 2√(r² − s²) to within the voxelisation: ≤ 1 % where the
    chord is long; at the rim the chord changes by ~√(2r) ≈ 6 px per pixel, so ≤ 3 px·value there."""
    from helpers.synthetic import ct_projections as cp

    n = 64
    disk = cp.Ellipse(3.0, -5.0, 20.0, 20.0, 0.0, 1.0)
    vol = cp.ellipse_image([disk], n, supersample=4)[None].astype(np.float32)
    angles = np.linspace(0, np.pi, 7)
    proj = cp.project_volume(vol, angles, supersample=2)
    np.testing.assert_allclose(proj[:, 0].sum(axis=1), vol.sum(), rtol=5e-3)
    exact = cp.ellipse_sinogram([disk], angles, n)
    assert np.abs(proj[:, 0] - exact).max() < 3.0
    middle = exact > 30
    np.testing.assert_allclose(proj[:, 0][middle], exact[middle], rtol=0.01)


def test_fresnel_propagation_keeps_the_beam_and_the_cone_beam_geometry():
    from helpers.synthetic import ct_projections as cp

    rng = np.random.default_rng(0)
    phase_obj = np.exp(-1j * 0.1 * ndimage.gaussian_filter(rng.standard_normal((64, 64)), 3))
    lam = cp.wavelength_m(29.6)
    np.testing.assert_allclose(cp.fresnel_propagate(phase_obj, lam, 0.0, 25e-9), phase_obj, atol=1e-12)
    intensity = np.abs(cp.fresnel_propagate(phase_obj, lam, 1e-4, 25e-9)) ** 2
    assert intensity.mean() == pytest.approx(1.0, abs=2e-3)  # energy stays in the field (edge padding)
    assert intensity.std() > 1e-3  # a pure phase object becomes visible by propagation
    geo = cp.cone_beam_effective(0.01, 1.0, 6.5e-6)
    assert geo["magnification"] == pytest.approx(101.0)
    assert geo["z_eff_m"] == pytest.approx(0.01 * 1.0 / 1.01)
    assert geo["pixel_size_m"] == pytest.approx(6.5e-6 / 101)
    with pytest.raises(ValueError, match="positive"):
        cp.cone_beam_effective(0.0, 1.0, 1e-6)


def test_raw_snr_dose_gives_that_snr_in_the_open_beam():
    """Open-beam frames at a raw-SNR dose: mean/σ = √I₀ = 8.8 (Poisson), within sampling error."""
    from helpers.synthetic import ct_projections as cp

    vol = np.zeros((8, 32, 32), np.float32)
    scan = cp.simulate_scan(
        vol, vol, np.zeros(4), rng=0, gain_sigma=0, beam_nonuniformity=0, read_noise=0, snr=8.8
    )
    assert scan.params["flat_counts"] == pytest.approx(8.8**2)
    flats = scan.flats[0].astype(float) - scan.params["dark_level"]
    beam = scan.truth["beam"]
    normalised = flats / beam
    assert normalised.mean() / normalised.std() == pytest.approx(8.8, rel=0.05)
