"""Tests of helpers.sxdm.maps: derived quantities (d, strain, tilt) and the HDF5 results file."""

import h5py
import numpy as np
import pytest

from helpers.sxdm import maps as M


def _toy_maps(reference_d=None, threshold=0.2):
    """5 × 4 map with exactly known Q: |Q| varies along x, direction tilts along y."""
    ny, nx = 5, 4
    q0 = 2 * np.pi / 4.738
    strain_true = np.linspace(-1e-3, 1e-3, nx)[None, :] * np.ones((ny, 1))
    tilt_x = np.radians(np.linspace(-0.1, 0.1, ny))[:, None] * np.ones((1, nx))
    qn = q0 / (1 + strain_true)
    q = np.stack([qn * np.sin(tilt_x), np.zeros_like(qn), qn * np.cos(tilt_x)], -1)
    intensity = np.full((ny, nx), 100.0)
    intensity[0, 0] = 10.0  # below 20 % of the maximum
    maps = M.derive_maps(
        intensity,
        q,
        np.full((ny, nx, 3), 1e-3),
        np.zeros((ny, nx), np.uint16),
        np.full((ny, nx, 3), 1e-6),
        np.arange(nx) * 0.1,
        np.arange(ny) * 0.1,
        rocking_direction=np.array([1.0, 0.0, 0.0]),
        mask_threshold=threshold,
        reference_d=reference_d,
        params={"method": "com"},
    )
    return maps, strain_true, tilt_x


def test_derived_quantities_exact():
    """d = 2π/|Q|, strain vs a given d_ref, tilt vs the mean Q: exact to float rounding (1e-12)."""
    d0 = 4.738
    maps, strain_true, tilt_x = _toy_maps(reference_d=d0)
    assert not maps.mask[0, 0] and maps.mask.sum() == 19
    np.testing.assert_allclose(maps.strain, strain_true, atol=1e-12)
    # the mean Q direction is tilted by the mean of the masked tilts (the point [0, 0] is excluded)
    mean_dir = np.degrees(np.arctan2(maps.reference_q[0], maps.reference_q[2]))
    np.testing.assert_allclose(np.abs(maps.tilt_deg), np.abs(np.degrees(tilt_x) - mean_dir), atol=1e-9)
    np.testing.assert_allclose(maps.tilt_xy_deg[..., 0], np.degrees(tilt_x) - mean_dir, atol=1e-9)
    np.testing.assert_allclose(maps.microstrain, 1e-3 / np.linalg.norm(maps.q, axis=-1))
    # azimuth: tilts towards +X have azimuth 0, towards -X ±180
    pos = maps.tilt_xy_deg[..., 0] > 1e-6
    np.testing.assert_allclose(maps.tilt_azimuth_deg[pos], 0.0, atol=1e-6)


def test_strain_relative_to_mean_and_histogram():
    """Without a reference the masked mean strain is 0; the histogram width equals std(d)/mean(d)."""
    maps, _, _ = _toy_maps()
    assert abs(np.mean(maps.strain[maps.mask])) < 1e-15
    counts, edges, width = M.d_histogram(maps, bins=10)
    d = maps.d_spacing[maps.mask]
    assert counts.sum() == d.size and width == pytest.approx(np.std(d) / np.mean(d))


def test_round_trip(tmp_path):
    """write_maps → read_maps returns every field unchanged; units, provenance and completeness stored."""
    maps, _, _ = _toy_maps()
    src = tmp_path / "input.h5"
    src.write_bytes(b"fake input")
    out = M.write_maps(tmp_path / "maps.h5", maps, {"input_file": str(src)})
    back = M.read_maps(out)
    for fld in M.fields(M.SxdmMaps):
        a, b = getattr(maps, fld.name), getattr(back, fld.name)
        if isinstance(a, dict):
            assert a == b
        else:
            np.testing.assert_array_equal(a, b)
    prov = M.read_provenance(out)
    assert prov["complete"] and prov["input_sha256"] == M.file_sha256(src)
    with h5py.File(out) as h5:
        assert h5["maps/d_spacing"].attrs["units"] == "angstrom"
        assert h5["maps"].attrs["mask_threshold"] == 0.2
    assert not list(tmp_path.glob("*.partial"))


def test_incomplete_file_refused(tmp_path):
    """A file without the 'complete' attribute (a crashed run) is refused with a clear OSError."""
    maps, _, _ = _toy_maps()
    out = M.write_maps(tmp_path / "maps.h5", maps)
    with h5py.File(out, "a") as h5:
        h5.attrs["complete"] = False
    with pytest.raises(OSError, match="incomplete"):
        M.read_maps(out)


def test_bad_inputs():
    """Reference d ≤ 0, an empty usable set and wrong shapes raise ValueError naming the problem."""
    with pytest.raises(ValueError, match="reference d"):
        _toy_maps(reference_d=-1.0)
    with pytest.raises(ValueError, match="usable counts"):
        M.threshold_mask(np.zeros((3, 3)), np.zeros((3, 3), np.uint16), 0.2)
    with pytest.raises(ValueError, match="usable counts"):
        M.threshold_mask(np.ones((3, 3)), np.full((3, 3), M.FLAG_BITS["no_data"], np.uint16), 0.2)
    maps, _, _ = _toy_maps()
    with pytest.raises(ValueError, match="x_um"):
        M.SxdmMaps(**{**{f.name: getattr(maps, f.name) for f in M.fields(M.SxdmMaps)}, "x_um": np.zeros(9)})
    with pytest.raises(KeyError, match="unknown flag"):
        maps.flagged("nope")


def test_rethreshold_changes_mask_only():
    """apply_mask_threshold keeps Q and widths, changes the mask and the mean-based references."""
    maps, _, _ = _toy_maps()
    loose = M.apply_mask_threshold(maps, 0.05)
    assert loose.mask.sum() == 20 and maps.mask.sum() == 19
    np.testing.assert_array_equal(loose.q, maps.q)
    assert loose.params["mask_threshold"] == 0.05 and loose.params["method"] == "com"


def test_stripe_period_and_bending_direction():
    """Analytic maps: stripes of period 0.44 µm with normal at 90° (+ a d gradient + noise) and a
    crystal bent about y with R = 400 µm (tilt towards X grows along x).

    Period within 3 fit σ of 0.44 µm and within 2 % (the fit σ comes from the residual noise, 2e-5 Å
    on an 8e-4·d amplitude); normal angle within 2°; radius within 1 % (noise-free tilt plane);
    bending axis ⟂ tilt gradient and along the stripe normal (90°).
    """
    from helpers.sxdm import patterns as PT

    rng = np.random.default_rng(3)
    x = 0.05 + 0.1 * np.arange(40)
    y = 0.05 + 0.1 * np.arange(40)
    xx, yy = np.meshgrid(x, y)
    mask = (xx - 2) ** 2 / 1.6**2 + (yy - 2) ** 2 / 1.3**2 < 1
    d0 = 4.738
    d_map = d0 * (1 + 8e-4 * np.cos(2 * np.pi * yy / 0.44 + 0.3) + 1e-4 * xx) + rng.normal(0, 2e-5, xx.shape)
    fit = PT.stripe_period(d_map, mask, x, y)
    assert abs(fit.period_um - 0.44) < max(3 * fit.period_err_um, 1e-4) and abs(fit.period_um - 0.44) < 0.0088
    assert PT.angle_between_deg(fit.normal_angle_deg, 90.0) < 2.0
    tilt = np.stack([np.degrees((xx - 2) / 400.0), np.zeros_like(xx)], axis=-1)
    bend = PT.bending_direction(tilt, mask, x, y)
    assert bend.radius_um == pytest.approx(400.0, rel=0.01)
    assert PT.angle_between_deg(bend.gradient_angle_deg, 0.0) < 1e-6
    assert PT.angle_between_deg(bend.axis_angle_deg, fit.normal_angle_deg) < 2.0
    with pytest.raises(ValueError, match="stripe period"):
        PT.stripe_period(d_map, np.zeros_like(mask), x, y)
