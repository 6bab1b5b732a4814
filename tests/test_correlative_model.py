"""The correlative forward model (helpers.synthetic.correlative) reproduces its own design laws."""

import numpy as np
import pytest

from helpers.synthetic import correlative as co


@pytest.fixture(scope="module")
def particle():
    return co.make_particle(seed=1)


def test_voids_follow_the_expected_void_fraction(particle):
    """Boolean model: on 0.25 µm cubes the realised void fraction against the expected f has slope 1
    (± 0.15: ~100 voids of 0.1–0.2 µm make the realised fraction noisy) and the overall fraction
    matches the mean f within 20 % (Poisson spread of ~100 voids, ≈ 10 % rms)."""
    b = 10
    crop = tuple(slice(0, (n // b) * b) for n in particle.crystal.shape)
    shape = [n // b for n in particle.crystal.shape]

    def block(a):
        a = a[crop].astype(float)
        return a.reshape(shape[0], b, shape[1], b, shape[2], b).mean(axis=(1, 3, 5))

    inside = block(particle.crystal) > 0.99
    f, v = block(particle.void_expected)[inside], block(particle.voids)[inside]
    assert np.polyfit(f, v, 1)[0] == pytest.approx(1.0, abs=0.15)
    expected = particle.void_expected[particle.crystal].mean()
    assert particle.info["void_fraction"] == pytest.approx(expected, rel=0.2)
    assert not (particle.voids & ~particle.crystal).any()


def test_lattice_expansion_is_the_stated_coupling(particle):
    """Δd/d = κ f exactly in the coupled crystal; in the control it is uncorrelated with f."""
    k = particle.design.coupling
    np.testing.assert_allclose(
        particle.d_rel[particle.crystal], k * particle.void_expected[particle.crystal], rtol=1e-5
    )
    ctrl = co.make_particle(co.CorrelativeDesign(coupled=False), seed=1)
    r = np.corrcoef(ctrl.d_rel[ctrl.crystal], ctrl.void_expected[ctrl.crystal])[0, 1]
    assert abs(r) < 0.1


def test_sxdm_rendering_integrates_the_solid_through_the_thickness(particle):
    model = co.sxdm_particle(particle)
    solid = particle.solid
    np.testing.assert_allclose(model.thickness_um, solid.sum(axis=0) * particle.design.voxel_um)
    j, i = np.unravel_index(np.argmax(solid.sum(axis=0)), model.shape)
    column = particle.d_rel[:, j, i][solid[:, j, i]].mean()
    assert model.d_spacing_A[j, i] / co.sxdm_model.D003_A - 1 == pytest.approx(column, rel=1e-6)


def test_ct_volume_is_the_object_after_the_stated_alignment(particle):
    """NMC voxels of the CT volume, mapped back through the alignment, land on the object's solid."""
    phase = co.ct_phase_volume(particle)
    assert (phase == 2).sum() == pytest.approx(particle.solid.sum(), rel=0.02)  # nearest-neighbour resampling
    al = particle.alignment()
    a = np.radians(al["angle_deg"])
    k, r, c = np.argwhere(phase == 2)[::997].T
    v = particle.design.voxel_um
    pc = np.stack([c * v, r * v]) - np.asarray(al["shift_um"])[:, None]
    ps = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]]) @ pc
    col = np.round(ps[0] / v - 0.5).astype(int)
    row = np.round(ps[1] / v - 0.5).astype(int)
    assert particle.solid[k, row, col].mean() > 0.97
