"""Void significance test against analytic cases: white noise of known σ, a sphere with known voids."""

import numpy as np
import pytest

from helpers.nanoct import void_significance as vs


def test_ball_mean_sigma_of_white_noise_is_sigma_over_root_n():
    # white Gaussian noise, σ = 10: the mean over n independent voxels has σ/√n (analytic). The relative
    # sampling error of a std from N ≫ 1 correlated positions is ≈ 1/√(2·N/n) ≤ 2 % here; bound 6 % (3×).
    rng = np.random.default_rng(1)
    vol = rng.normal(100.0, 10.0, (64, 64, 64))
    region = np.ones(vol.shape, bool)
    sig = vs.ball_mean_sigma(vol, region, radii=(1, 2, 3))
    for r, s in sig.items():
        n = vs.ball(r).sum()
        assert s == pytest.approx(10.0 / np.sqrt(n), rel=0.06)


def test_ball_mean_sigma_refuses_a_region_too_small():
    vol = np.zeros((20, 20, 20))
    region = np.zeros(vol.shape, bool)
    region[5:8, 5:8, 5:8] = True
    with pytest.raises(ValueError, match="larger region"):
        vs.ball_mean_sigma(vol, region, radii=(2,))


def _sphere(shape, centre, radius):
    zz, yy, xx = np.indices(shape)
    return (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 <= radius**2


def test_voids_by_significance_finds_a_resolved_void_and_no_false_void():
    # two particles (r = 14 vox, grey 200) in air (grey 100), white noise σ = 40 (CNR 2.5 per voxel);
    # particle 1 holds a void of radius 4 vox (268 voxels): its ball-4 mean deficit is 100 against
    # σ₄ = 40/√257 ≈ 2.5 → 40 σ; particle 2 has none. The false-alarm rate at k = 3.7 is 1e-4 per
    # ball: over the ≈ 10⁴ centres of a particle fewer than ~1 voxel of false centres is expected, each
    # dilated by its ball and cut to voxels below the mid-grey.
    rng = np.random.default_rng(7)
    shape = (40, 40, 80)
    p1, p2 = _sphere(shape, (20, 20, 20), 14), _sphere(shape, (20, 20, 60), 14)
    void = _sphere(shape, (20, 20, 20), 4)
    truth = np.where(p1 | p2, 200.0, 100.0)
    truth[void] = 100.0
    vol = truth + rng.normal(0, 40.0, shape)
    labels = np.zeros(shape, np.int32)
    labels[p1 & ~void] = 1
    labels[p2] = 2
    air = ~(_sphere(shape, (20, 20, 20), 16) | _sphere(shape, (20, 20, 60), 16))
    table, mask, sigma = vs.voids_by_significance(vol, labels, air)
    assert sigma[4] == pytest.approx(40.0 / np.sqrt(vs.ball(4).sum()), rel=0.15)  # 2 000 air positions only
    found = mask & void
    # the dilated centres cover the void's core; recovered share ≥ 0.7 of its 268 voxels, its false
    # part ≤ the shell of one voxel around it
    assert found.sum() / void.sum() >= 0.7
    assert (mask & p1 & ~void).sum() <= (_sphere(shape, (20, 20, 20), 5) & ~void).sum()
    vf = dict(zip(table.label, table.void_fraction, strict=True))
    true_vf = void.sum() / p1.sum()
    # seeds 0–5: σ₄ 0.96–1.06 of σ/√n, void found 0.87–0.92, false voxels 12–23, void fraction −6 … +1 %
    # of the truth, void-free particle ≤ 0.0003: bounds ±20 % and the target 0.005
    assert vf[1] == pytest.approx(true_vf, rel=0.2)
    assert vf[2] <= 0.005


def test_correlated_noise_makes_no_false_voids_where_the_per_voxel_rule_does():
    # a void-free particle (r = 16 vox, grey 200) in air (100); noise correlated over ≈ 3 voxels
    # (white noise Gaussian-filtered with σ_f = 2, rescaled to σ = 40 per voxel: CNR 2.5), as after
    # Paganin + FBP. The per-voxel rule (grey below the particle/air mid-grey, components ≥ 4 voxels)
    # flags clusters of low noise; the significance test measures σ of each ball mean in the air of the
    # same volume (the correlation included) and keeps nothing at k = 3.7. Bounds: the per-voxel rule's
    # expected false fraction is P(N < −1.25σ) ≈ 0.1 less the dropped small components (> 0.02;
    # seeds 0–4: 0.083–0.115, significance 0.000); the target for void-free particles is ≤ 0.005.
    from scipy import ndimage as ndi

    from helpers.nanoct import voids as vd

    rng = np.random.default_rng(11)
    shape = (64, 96, 96)
    particle = _sphere(shape, (32, 48, 48), 16)
    noise = ndi.gaussian_filter(rng.standard_normal(shape), 2.0, mode="wrap")
    vol = np.where(particle, 200.0, 100.0) + 40.0 * noise / noise.std()
    labels = particle.astype(np.int32)
    air = ~_sphere(shape, (32, 48, 48), 19)
    table, _, _ = vs.voids_by_significance(vol, labels, air)
    per_voxel, _ = vd.voids_from_particle_statistics(vol, labels, air_grey=float(np.median(vol[air])))
    assert per_voxel.void_fraction.iloc[0] > 0.02
    assert table.void_fraction.iloc[0] <= 0.005
