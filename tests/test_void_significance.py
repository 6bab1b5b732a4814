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


# ------------------------------------------------------------------ the command, end to end


def _powder(seed, shape=(48, 88, 88), contrast=90.0, sigma=36.0, corr_vox=1.0):
    """Four spheres (r = 15 vox, grey 180) in air (90), three voids inside two of them from their shape
    definitions, 8-bit; noise = white noise Gaussian-filtered (σ_f = ``corr_vox``) and scaled to
    ``sigma`` per voxel (CNR = contrast / σ = 2.5). Returns the volume, the particle spheres (labels
    1–4, voids included), the void mask and the noise field."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    centres = [(24, 23, 23), (24, 23, 65), (24, 65, 23), (24, 65, 65)]
    particles = np.zeros(shape, np.int32)
    for i, c in enumerate(centres, start=1):
        particles[_sphere(shape, c, 15)] = i
    void = _sphere(shape, (24, 23, 23), 5) | _sphere(shape, (24, 65, 65), 4) | _sphere(shape, (20, 65, 65), 2)
    grey = np.where(particles > 0, 90.0 + contrast, 90.0)
    grey[void] = 90.0
    noise = ndi.gaussian_filter(rng.standard_normal(shape), corr_vox, mode="wrap")
    noise *= sigma / noise.std()
    return np.clip(np.rint(grey + noise), 0, 255).astype(np.uint8), particles, void, noise


def _matched(labels, particles):
    """{true particle: found label} for found particles overlapping a true one at IoU ≥ 0.8."""
    out = {}
    for lab in range(1, int(labels.max()) + 1):
        found = labels == lab
        ref = int(np.bincount(particles[found]).argmax())
        if ref and (found & (particles == ref)).sum() / (found | (particles == ref)).sum() >= 0.8:
            out[ref] = lab
    return out


def test_ct_analyse_significance_end_to_end_on_correlated_noise(tmp_path):
    # The command finds the air itself, measures σ of the ball means there (the correlation included) and
    # keeps voids significant against it. Truth from the shapes: void fractions of spheres 1 and 4; 2
    # and 3 are void-free. σ checked against the ball means of the generator's noise field over the
    # whole volume (another estimator on other data: all positions, no 8-bit rounding).
    import h5py
    import pandas as pd

    from helpers.cli import main

    vol, particles, void, noise = _powder(3)
    src = tmp_path / "vol.npy"
    np.save(src, vol)
    out = tmp_path / "sig.h5"
    assert main(["ct-analyse", str(src), "--out", str(out), "--denoise", "tv", "--no-morphology",
                 "--min-particle-voxels", "500", "--void-test", "significance"]) == 0
    table = pd.read_csv(tmp_path / "sig_particles.csv")
    with h5py.File(out) as f:
        labels = f["labels"][()]
        assert f.attrs["void_test"] == "significance"
        g = f["void_test"]
        assert g.attrs["k_sigma"] == pytest.approx(3.7) and "automatic" in g.attrs["air_region"]
        radii, sigma = g["ball_radius_voxels"][()], g["sigma_ball_mean_grey"][()]
        assert set(radii) >= {1, 2, 3, 4}  # enough air for these radii at least
        assert g.attrs["air_grey"] == pytest.approx(90, abs=2)
    for r, s in zip(radii, sigma, strict=True):
        # measured on ≥ 40 000 air positions; the field's own ball means differ by 8-bit rounding and
        # sampling: seeds 0–5 agree within 4 % (r ≤ 3) and 6 % (r = 4); bound 10 %
        assert s == pytest.approx(float(vs.ball_mean(noise, r).std()), rel=0.10)
    match = _matched(labels, particles)
    assert set(match) == {1, 2, 3, 4}
    vf = dict(zip(table.label, table.void_fraction, strict=True))
    for ref in (1, 4):
        true_vf = (void & (particles == ref)).sum() / (particles == ref).sum()
        # seeds 0–5: +0.001 … +0.027 on true fractions 0.036 and 0.020 (the significant support, cut
        # at the mid-grey of the radius-1 mean, keeps some solid voxels around each void); bound 0.04
        assert vf[match[ref]] == pytest.approx(true_vf, abs=0.04)
        assert vf[match[ref]] >= 0.5 * true_vf  # the void is found, not only noise
    for ref in (2, 3):
        # seeds 0–5: 0 … 0.0126 (k = 3.7 is 1e-4 per independent ball; a particle holds hundreds
        # of correlated balls per radius): bound 0.02
        assert vf[match[ref]] <= 0.02


def _saved_powder(tmp_path, seed):
    """The 4-sphere powder of ``seed`` saved as .npy, and ct-analyse arguments for its significance test."""
    vol, *_ = _powder(seed)
    src = tmp_path / "vol.npy"
    np.save(src, vol)
    return src, ["ct-analyse", str(src), "--denoise", "tv", "--no-morphology", "--min-particle-voxels", "500",
                 "--void-test", "significance"]


def test_ct_analyse_significance_with_a_given_air_box_and_its_errors(tmp_path):
    import h5py

    from helpers.cli import main

    src, common = _saved_powder(tmp_path, 4)
    # a corner of air, ≥ 2 voxels from every sphere (corner (0–20)³ to centre (24, 22, 22): ≥ 15.9 vox)
    assert main([*common, "--out", str(tmp_path / "box.h5"), "--air-region", "0:20,0:20,0:20"]) == 0
    with h5py.File(tmp_path / "box.h5") as f:
        assert "given" in f["void_test"].attrs["air_region"]
        assert f["void_test"].attrs["air_region_voxels"] == 20**3
        assert list(f["void_test/ball_radius_voxels"][()]) == [1, 2]  # 8 000 voxels: larger balls refused
    # a malformed box, and a box too small for any ball, are refused before anything is written
    assert main([*common, "--out", str(tmp_path / "bad.h5"), "--air-region", "0:20,0:20"]) == 2
    assert main([*common, "--out", str(tmp_path / "small.h5"), "--air-region", "0:4,0:4,0:4"]) == 2
    assert main(["ct-analyse", str(src), "--out", str(tmp_path / "t.h5"), "--air-region", "0:9,0:9,0:9"]) == 2
    for name in ("bad", "small", "t"):
        assert not list(tmp_path.glob(f"{name}*"))


def test_ct_analyse_significance_refuses_a_volume_without_air(tmp_path, capsys):
    # one block filling the box but for a 3-voxel rim: no background voxel lies 6 voxels from it
    from helpers.cli import main

    shape = (40, 40, 40)
    rng = np.random.default_rng(0)
    block = np.zeros(shape, bool)
    block[3:-3, 3:-3, 3:-3] = True
    vol = np.where(block, 180.0, 90.0) + rng.normal(0, 10, shape)
    src = tmp_path / "full.npy"
    np.save(src, np.clip(vol, 0, 255).astype(np.uint8))
    out = tmp_path / "full.h5"
    assert main(["ct-analyse", str(src), "--out", str(out), "--no-morphology", "--void-test",
                 "significance"]) == 2
    err = capsys.readouterr().err
    assert "no air found" in err and "--air-region" in err
    assert not out.exists()


def test_ct_analyse_significance_with_scheduler_local_equals_in_process(tmp_path):
    # the void tasks read each particle's crop (padded by the largest ball) from the input file: the same
    # tables and the same recorded σ as in one process
    import h5py
    import pandas as pd

    from helpers.cli import main

    _, common = _saved_powder(tmp_path, 5)
    assert main([*common, "--out", str(tmp_path / "one.h5")]) == 0
    assert main([*common, "--out", str(tmp_path / "dask.h5"), "--scheduler", "local", "--workers", "2"]) == 0
    for table in ("particles", "voids"):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / f"one_{table}.csv"),
                                      pd.read_csv(tmp_path / f"dask_{table}.csv"))
    with h5py.File(tmp_path / "one.h5") as a, h5py.File(tmp_path / "dask.h5") as b:
        np.testing.assert_array_equal(a["labels"][()], b["labels"][()])
        sigma = "void_test/sigma_ball_mean_grey"
        np.testing.assert_array_equal(a[sigma][()], b[sigma][()])
    assert pd.read_csv(tmp_path / "one_particles.csv").void_fraction.max() > 0.01  # voids were measured


def test_a_particle_on_the_volume_border_keeps_its_envelope():
    # a 3×3×3 block in the corner: the closing's erosion would remove the voxels on the border; the
    # envelope holds the particle's own voxels at least, so it is measured (void-free), not "all void"
    from helpers.nanoct import voids as vd

    vol = np.full((20, 20, 20), 100, np.uint8)
    vol[:3, :3, :3] = 200
    labels = np.zeros(vol.shape, np.int32)
    labels[:3, :3, :3] = 1
    noise = vs.VolumeNoise(sigma={1: 5.0}, positions={1: 10**5}, air_grey=100.0, region="test",
                           region_voxels=10**5)
    envelope, void, _ = vs.particle_void_crop(vol, labels == 1, noise)
    assert envelope.sum() == 27 and not void.any()
    particles, _ = vd.analyse_voids(vol, labels, 150, 0.025, significance=noise)
    assert particles.void_fraction.iloc[0] == 0.0 and particles.filled_voxels.iloc[0] == 27
