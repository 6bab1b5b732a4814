"""Automatic NMC threshold with two or three resolved phases, and voids against each particle's grey."""

import numpy as np
import pytest

from helpers.nanoct import segment as seg
from helpers.nanoct import voids as vd


def _counts(components, n=2_000_000, seed=0):
    """Histogram (256,) of a mixture of (fraction, mean, sigma) Gaussians, clipped to 0..255."""
    rng = np.random.default_rng(seed)
    values = np.concatenate([rng.normal(m, s, int(f * n)) for f, m, s in components])
    return np.bincount(np.clip(np.rint(values), 0, 255).astype(int), minlength=256)


def test_three_resolved_phases_are_named_and_the_threshold_sits_between_glue_and_nmc():
    auto = seg.nmc_threshold_auto(_counts([(0.3, 60, 10), (0.4, 110, 10), (0.3, 190, 10)]))
    assert auto.phases == ("air", "glue", "NMC")
    assert auto.threshold == pytest.approx(150, abs=2)  # mid-grey of 110 and 190; fit error ≪ 1 level


@pytest.mark.parametrize(
    "components",
    [
        [(0.35, 100, 12), (0.35, 112, 12), (0.3, 190, 12)],  # air and glue merged (D ≈ 1)
        [(0.7, 60, 12), (0.3, 190, 12)],  # no glue
        [(0.7, 110, 12), (0.3, 190, 12)],  # no air
    ],
)
def test_two_resolved_phases_still_give_an_nmc_threshold(components):
    auto = seg.nmc_threshold_auto(_counts(components))
    assert auto.phases == ("air and/or glue", "NMC")
    background = np.average([m for _, m, _ in components[:-1]], weights=[f for f, _, _ in components[:-1]])
    # mid-grey of the background and NMC means; the merged background is not one Gaussian, so its
    # fitted mean may move by ~ its σ/2 (6 levels): the threshold by half that
    assert auto.threshold == pytest.approx(0.5 * (background + 190), abs=4)


def test_nmc_not_separable_is_refused_with_advice():
    with pytest.raises(ValueError, match="NMC is not separable.*manual threshold"):
        seg.nmc_threshold_auto(_counts([(0.7, 120, 20), (0.3, 140, 20)]))


@pytest.mark.parametrize("volume", [np.zeros((8, 8, 8), np.uint8), np.full((8, 8, 8), 130, np.uint8)])
def test_empty_or_one_grey_volume_is_named(volume):
    with pytest.raises(ValueError, match="empty or all one grey"):
        seg.nmc_threshold_auto(volume)


def _ball(shape, centre, radius):
    zz, yy, xx = np.indices(shape)
    return (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 <= radius**2


def test_voids_are_found_against_the_particles_own_grey_level():
    """Two spheres (r 14 voxels) at different grey levels (190 and 160: a reconstruction offset), one
    holding a void of r 4; air 60, noise σ 12 (CNR ≈ 10). Truth: the void's voxel count. The void
    threshold is per particle, so the darker void-free particle gets no false voids."""
    rng = np.random.default_rng(1)
    shape = (40, 40, 80)
    a, b = _ball(shape, (20, 20, 20), 14), _ball(shape, (20, 20, 60), 14)
    void = _ball(shape, (20, 22, 18), 4)
    grey = np.full(shape, 60.0)
    grey[a] = 190.0
    grey[b] = 160.0
    grey[void] = 60.0
    volume = np.clip(grey + rng.normal(0, 12, shape), 0, 255).astype(np.uint8)
    labels = (a * 1 + b * 2).astype(np.int32)
    table, mask = vd.voids_from_particle_statistics(volume, labels, air_grey=60.0)
    truth_fraction = void.sum() / a.sum()
    # one boundary voxel layer of the r = 4 void is ~ 40 % of it; noise flips ~ Φ(−65/12) ≈ 0 voxels
    assert table.void_fraction[0] == pytest.approx(truth_fraction, abs=0.01)
    assert table.void_fraction[1] <= 0.005
    assert np.count_nonzero(mask & void) >= 0.6 * void.sum()


def test_segment_particles_without_glue_fits_two_phases_and_finds_the_balls():
    """Balls (r 10 voxels) in air only, no glue: the three-phase fit cannot resolve air from glue, the
    automatic threshold falls back to NMC + one background, says so, and the balls come out whole.
    Truth: the balls' definition (voxel counts of the drawn spheres)."""
    rng = np.random.default_rng(3)
    shape = (48, 48, 96)
    centres = [(24, 24, 20), (24, 24, 48), (24, 24, 76)]
    truth = np.zeros(shape, np.int32)
    for k, c in enumerate(centres, start=1):
        truth[_ball(shape, c, 10)] = k
    grey = np.where(truth > 0, 190.0, 70.0) + rng.normal(0, 12, shape)  # CNR ≈ 10
    volume = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
    result = seg.segment_particles(volume)
    assert result.phases_found.startswith("two phases") and result.phase_fit is None
    # a well-separated pair: the mixture predicts an almost perfect mask (Φ(−5) per side)
    assert result.predicted_iou > 0.99
    assert result.n_particles == 3
    report = seg.match_labels(result.labels, truth, iou_min=0.8)
    assert report.matched_fraction == 1.0


def test_segment_particles_refuses_an_inseparable_volume_before_labelling():
    """NMC 20 grey levels above a background of σ 20 (D ≈ 1): refused with what the fit found and what
    to try; after a denoising filter the message says that filter was already used."""
    rng = np.random.default_rng(4)
    shape = (40, 40, 40)
    nmc = _ball(shape, (20, 20, 20), 12)
    volume = np.clip(np.rint(np.where(nmc, 140.0, 120.0) + rng.normal(0, 20, shape)), 0, 255).astype(np.uint8)
    with pytest.raises(ValueError, match="not separable.*manual threshold"):
        seg.segment_particles(volume)
    with pytest.raises(ValueError, match="after denoising with 'median'"):
        seg.segment_particles(volume, denoise="median", denoise_strength=3)


def test_ct_analyse_refuses_the_paper_noise_chain_volume_and_writes_nothing(tmp_path, capsys):
    """The bundled scan at the paper's dose, reconstructed by the chain (CNR ≈ 2.5): the fitted mixture
    predicts an NMC mask far from the truth, so the automatic threshold is refused with the numbers;
    a manual threshold still runs."""
    from helpers.cli import main
    from helpers.paths import data_sample

    recon, out = tmp_path / "r.h5", tmp_path / "a.h5"
    scan = str(data_sample("ct_powder3d_scan.h5"))
    assert main(["ct-reconstruct", scan, "--out", str(recon), "--quiet"]) == 0
    analyse = ["ct-analyse", str(recon), "--dataset", "/volume_8bit", "--out", str(out), "--no-morphology"]
    assert main(analyse) == 2
    assert "not separable" in capsys.readouterr().err and not out.exists()
    assert main([*analyse, "--threshold", "160"]) == 0
    assert out.exists()
