"""What the commands promise about their outputs and inputs: an absorption scan without distances, other
NeXus layouts by path (Diamond K11-like, linked files), NXtomo files written by ESRF's ``nxtomo``, no
half-written output after a crash, a failed ensemble fit that keeps the per-particle radii, and NXdata
views that the field's viewers (silx) recognise."""

import json
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from helpers.cli import main
from helpers.nanoct import cli_reconstruct as ct_cli
from helpers.nanoct import grey
from helpers.nanoct import io as ctio
from helpers.paths import data_sample

sys.path.insert(0, str(Path(__file__).parent))
from test_sxdm_curvature import bent_field, maps_from_tilt  # noqa: E402

ROWS = "10:12"


@pytest.fixture(scope="module")
def scan():
    return ctio.read_nxtomo(data_sample("ct_powder_holotomo.h5"), "entry0000")


@pytest.fixture(scope="module")
def absorption_volume(scan, tmp_path_factory):
    """The APS case: a Data Exchange file (no distance, no energy) reconstructed with --phase none."""
    tmp = tmp_path_factory.mktemp("dx")
    dx = ctio.write_dataexchange(tmp / "scan.h5", scan.read_projections(), scan.flats, scan.darks,
                                 scan.angles_rad, 25e-9)
    out = tmp / "r.h5"
    assert main(["ct-reconstruct", str(dx), "--out", str(out), "--phase", "none", "--slices", ROWS,
                 "--center", "63.5", "--quiet"]) == 0
    with h5py.File(out) as f:
        assert f.attrs["complete"]
        return f["volume"][()]


def test_an_absorption_scan_reconstructs_without_a_distance(absorption_volume, scan):
    """−ln of the flat-fielded projections, FBP at the simulated axis: equals the in-memory chain."""
    from helpers.nanoct import recon

    trans = ctio.flat_dark_correct(scan.read_projections(slice(10, 12)), scan.flat_mean()[10:12],
                                   scan.dark_mean()[10:12])
    sino = -np.log(np.clip(trans[:, 0], 1e-6, None))
    expected = recon.reconstruct(sino, scan.angles_rad, 63.5, "gridding")
    np.testing.assert_allclose(absorption_volume[0], expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())


def test_a_layout_of_linked_files_is_read_by_its_paths(scan, absorption_volume, tmp_path):
    """Diamond K11 (DIAD)-like: frames in a detector file linked at entry/imaging/data, image_key under
    entry/instrument/imaging/, angles (deg, with units) in a linked position-capture file. Same data,
    so the same volume as the Data Exchange file."""
    proj = scan.read_projections()
    frames = np.concatenate([scan.darks, scan.flats, proj])
    key = np.r_[np.full(len(scan.darks), 2), np.full(len(scan.flats), 1), np.zeros(len(proj), int)]
    angles = np.r_[np.zeros(len(scan.darks) + len(scan.flats)), np.degrees(scan.angles_rad)]
    with h5py.File(tmp_path / "detector.h5", "w") as f:
        f["data"] = frames
    with h5py.File(tmp_path / "panda.h5", "w") as f:
        f["rot"] = angles
        f["rot"].attrs["units"] = "deg"
    nexus = tmp_path / "k11-12345.nxs"
    with h5py.File(nexus, "w") as f:
        f["entry/imaging/data"] = h5py.ExternalLink("detector.h5", "data")
        f["entry/instrument/imaging/image_key"] = key
        f["entry/instrument/rotation/angle"] = h5py.ExternalLink("panda.h5", "rot")
    out = tmp_path / "r.h5"
    argv = ["ct-reconstruct", str(nexus), "--out", str(out), "--phase", "none", "--slices", ROWS,
            "--center", "63.5", "--quiet", "--data-path", "entry/imaging/data", "--image-key-path",
            "entry/instrument/imaging/image_key", "--angles-path", "entry/instrument/rotation/angle"]
    assert main(argv) == 0
    with h5py.File(out) as f:
        np.testing.assert_allclose(f["volume"][()], absorption_volume, rtol=1e-6, atol=1e-9)
    assert main([*argv, "--angles-units", "rad"]) == 2  # the file says deg: a contradiction is refused


def test_nxtomo_files_written_by_nxtomo_are_read(tmp_path):
    """ESRF's nxtomo writes the NXtomo (pint units: nm pixels, keV, degrees); our reader gives SI values."""
    import pint

    # nxtomo is a core dependency: a failed import must fail the test
    from nxtomo import NXtomo
    from nxtomo.nxobject.nxdetector import ImageKey

    ureg = pint.get_application_registry()
    rng = np.random.default_rng(0)
    n_proj = 16
    data = rng.integers(1000, 2000, (2 + 3 + n_proj, 8, 10)).astype(np.uint16)
    data[:2] = 100  # darks
    data[2:5] = 3000  # flats
    nx = NXtomo()
    nx.instrument.detector.data = data
    nx.instrument.detector.image_key_control = (
        [ImageKey.DARK_FIELD] * 2 + [ImageKey.FLAT_FIELD] * 3 + [ImageKey.PROJECTION] * n_proj
    )
    angles = np.linspace(0, 180, n_proj, endpoint=False)
    nx.sample.rotation_angle = np.r_[np.zeros(5), angles] * ureg.degree
    nx.instrument.detector.x_pixel_size = 50.0 * ureg.nanometer
    nx.instrument.detector.y_pixel_size = 50.0 * ureg.nanometer
    nx.instrument.detector.distance = 0.1 * ureg.millimeter
    nx.instrument.beam.incident_energy = 29.6 * ureg.keV
    path = tmp_path / "nx.nx"
    nx.save(str(path), "entry0000")
    tomo = ctio.read_nxtomo(path)
    assert tomo.shape == (n_proj, 8, 10) and tomo.dtype == np.uint16
    np.testing.assert_allclose(tomo.angles_rad, np.radians(angles))
    assert tomo.pixel_size_m == pytest.approx(50e-9)
    assert tomo.distance_m == pytest.approx(1e-4)
    assert tomo.energy_kev == pytest.approx(29.6)
    np.testing.assert_array_equal(tomo.read_frames(0, n_proj), data[5:])
    np.testing.assert_array_equal(tomo.flats, data[2:5])


def test_a_crash_in_the_8bit_step_leaves_no_output_that_looks_complete(tmp_path, monkeypatch):
    sample = data_sample("ct_powder_holotomo.h5")
    out = tmp_path / "r.h5"
    argv = ["ct-reconstruct", str(sample), "--out", str(out), "--slices", ROWS, "--quiet"]

    def crash(self, volume):
        raise MemoryError("simulated crash while writing /volume_8bit")

    monkeypatch.setattr(grey.Window, "to_8bit", crash)
    with pytest.raises(MemoryError):
        main(argv)
    assert not out.exists()
    with h5py.File(ct_cli.partial_path(out)) as f:
        assert not f.attrs["complete"]
    with pytest.raises(OSError, match="incomplete"):
        from helpers.nanoct.volume_io import open_volume

        open_volume(ct_cli.partial_path(out).rename(tmp_path / "partial.h5"), "volume_8bit")
    (tmp_path / "partial.h5").rename(ct_cli.partial_path(out))
    monkeypatch.undo()
    assert main(argv) == 0  # resumes: only the 8-bit step is left
    with h5py.File(out) as f:
        assert f.attrs["complete"] and f["volume_8bit"][()].max() > 0
    before = out.read_bytes()
    assert main(argv) == 0  # the same run again: complete already, nothing rewritten
    assert out.read_bytes() == before


def test_a_failed_ensemble_fit_keeps_every_radius(tmp_path, capsys):
    """Three bent crystals of one size (R = 600, 1000, 1500 µm): each R is reported; the fit with an
    intercept is undefined for one size, so the command says so and exits 3 (partial success)."""
    paths = []
    for i, radius in enumerate((600.0, 1000.0, 1500.0)):
        tilt, mask, x_um, y_um = bent_field(radius, seed=30 + i, noise_deg=0.002)
        from helpers.sxdm.maps import write_maps

        paths.append(write_maps(tmp_path / f"p{i}.h5", maps_from_tilt(tilt, mask, x_um, y_um)))
    out = tmp_path / "curvature.json"
    code = main(["sxdm-curvature", *map(str, paths), "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 3, text
    assert "no ensemble fit could be made" in text and "partial success" in text
    result = json.loads(out.read_text())
    radii = [float(p["radius_um"]) for p in result["particles"]]
    sigmas = [float(p["radius_sigma_um"]) for p in result["particles"]]
    for r, s, true in zip(radii, sigmas, (600.0, 1000.0, 1500.0), strict=True):
        assert abs(r - true) < 4 * s, (r, s, true)
    assert "error" in result["ensemble"]["with_intercept"]


def test_outputs_are_nxdata_that_silx_recognises(tmp_path):
    """silx (the library behind `silx view`) finds a valid default NXdata with axes in each output."""
    # silx comes with the core dependency nabu: a failed import must fail the test
    from silx.io.nxdata import get_default

    sample = data_sample("ct_powder_holotomo.h5")
    out = tmp_path / "r.h5"
    assert main(["ct-reconstruct", str(sample), "--out", str(out), "--slices", ROWS, "--quiet"]) == 0
    tilt, mask, x_um, y_um = bent_field(500.0, seed=3)
    from helpers.sxdm.maps import write_maps

    maps = write_maps(tmp_path / "m.h5", maps_from_tilt(tilt, mask, x_um, y_um))
    with h5py.File(out) as f:
        nx = get_default(f)
        assert nx is not None and nx.signal.name.endswith("/volume") and nx.signal.shape == (2, 128, 128)
        assert [a.attrs["units"] for a in nx.axes] == ["um"] * 3
        np.testing.assert_allclose(np.diff(nx.axes[2][:2]), 0.025)  # 25 nm voxels in µm
    with h5py.File(maps) as f:
        nx = get_default(f)
        assert nx is not None and nx.signal.name.endswith("/strain")
        assert [a.name.split("/")[-1] for a in nx.axes] == ["y_um", "x_um"]
        assert "tilt_deg" in f["maps"].attrs["auxiliary_signals"]
