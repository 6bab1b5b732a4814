"""Bad inputs to every command (both techniques): each is refused with exit code 2 and a message that
says what is wrong, before any work and without creating or touching ``--out``.

``python tests/test_bad_inputs.py`` prints the table of cases and the exact messages (markdown).
"""

from __future__ import annotations

import contextlib
import io
import shutil
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from helpers.cli import main
from helpers.nanoct import io as ctio
from helpers.paths import data_sample

SXDM = data_sample("sxdm_fig1_particle") / "sxdm_fig1_particle.h5"


def build_inputs(tmp: Path) -> dict[str, Path]:
    """Small input files, good and bad, in ``tmp``."""
    p = {"tmp": tmp}
    p["ct"] = tmp / "scan.h5"
    shutil.copy(data_sample("ct_powder_holotomo.h5"), p["ct"])
    scan = ctio.read_nxtomo(p["ct"], "entry0000")
    proj = scan.read_projections()
    p["dx"] = ctio.write_dataexchange(tmp / "dx.h5", proj, scan.flats, scan.darks, scan.angles_rad, 25e-9)
    nan_proj = proj.copy()
    nan_proj[7, 3, 5] = np.nan
    p["dx_nan"] = ctio.write_dataexchange(tmp / "dx_nan.h5", nan_proj, scan.flats, scan.darks,
                                          scan.angles_rad, 25e-9)
    nan_flats = scan.flats.copy()
    nan_flats[1, 0, 0] = np.nan
    p["dx_nan_flat"] = ctio.write_dataexchange(tmp / "dx_nan_flat.h5", proj, nan_flats, scan.darks,
                                               scan.angles_rad, 25e-9)
    with h5py.File(tmp / "dx_2d.h5", "w") as f:
        f["exchange/data"] = proj[:, 10]
        f["exchange/data_white"] = scan.flats[:, 10]
        f["exchange/data_dark"] = scan.darks[:, 10]
        f["exchange/theta"] = np.degrees(scan.angles_rad)
    p["dx_2d"] = tmp / "dx_2d.h5"
    with h5py.File(tmp / "other.h5", "w") as f:  # a NeXus layout of its own, angles without units
        f["entry/imaging/data"] = np.concatenate([scan.darks[:1], scan.flats[:2], proj])
        f["entry/instrument/imaging/image_key"] = np.r_[2, 1, 1, np.zeros(len(proj), int)]
        f["entry/angles"] = np.r_[0, 0, 0, np.degrees(scan.angles_rad)]
        f["entry/short_angles"] = np.degrees(scan.angles_rad)[:50]
    p["other"] = tmp / "other.h5"
    (tmp / "notes.txt").write_text("not HDF5")
    p["text"] = tmp / "notes.txt"
    (tmp / "foreign.h5").write_bytes(b"")
    with h5py.File(tmp / "foreign.h5", "w") as f:
        f["something"] = np.arange(3)
    p["foreign"] = tmp / "foreign.h5"
    rng = np.random.default_rng(0)
    vol = rng.integers(0, 255, (8, 16, 16), dtype=np.uint8)
    with h5py.File(tmp / "vol.h5", "w") as f:
        f["volume"] = vol
    p["vol"] = tmp / "vol.h5"
    np.save(tmp / "vol_float.npy", vol.astype(np.float32))
    p["vol_float"] = tmp / "vol_float.npy"
    np.save(tmp / "vol_2d.npy", vol[0])
    p["vol_2d"] = tmp / "vol_2d.npy"
    with h5py.File(tmp / "unfinished.h5", "w") as f:
        f.attrs["complete"] = False
        f["volume_8bit"] = vol
    p["unfinished"] = tmp / "unfinished.h5"
    from helpers.sxdm.maps import write_maps

    sys.path.insert(0, str(Path(__file__).parent))
    from test_sxdm_curvature import bent_field, maps_from_tilt

    tilt, mask, x_um, y_um = bent_field(300.0, seed=1)
    p["maps"] = write_maps(tmp / "maps.h5", maps_from_tilt(tilt, mask, x_um, y_um))
    p["exists"] = tmp / "exists.json"
    p["exists"].write_text("{}")
    return p


CT, AN, SM, SC = "ct-reconstruct", "ct-analyse", "sxdm-maps", "sxdm-curvature"

#: (command, what is wrong, argv builder, part of the expected message)
CASES = [
    (CT, "input missing", lambda p: [p["tmp"] / "nope.h5", "--out", p["tmp"] / "o.h5"],
     "input file not found"),
    (CT, "input not HDF5", lambda p: [p["text"], "--out", p["tmp"] / "o.h5"], "cannot open as HDF5"),
    (CT, "2-D frames (one sinogram)", lambda p: [p["dx_2d"], "--out", p["tmp"] / "o.h5", "--phase", "none"],
     "tomography frames need 3"),
    (CT, "rows outside the detector", lambda p: [p["ct"], "--out", p["tmp"] / "o.h5", "--slices", "20:40"],
     "outside the detector rows"),
    (CT, "rows not a:b", lambda p: [p["ct"], "--out", p["tmp"] / "o.h5", "--slices", "a-b"], "'a:b'"),
    (CT, "centre outside the detector", lambda p: [p["ct"], "--out", p["tmp"] / "o.h5", "--center", "500"],
     "outside the detector columns"),
    (CT, "centre not a number", lambda p: [p["ct"], "--out", p["tmp"] / "o.h5", "--center", "mid"],
     "give a number of pixels"),
    (CT, "empty 8-bit window", lambda p: [p["ct"], "--out", p["tmp"] / "o.h5", "--window", "5:1"],
     "need finite low < high"),
    (CT, "window not low:high", lambda p: [p["ct"], "--out", p["tmp"] / "o.h5", "--window", "wide"],
     "'low:high'"),
    (CT, "slab of 0 rows", lambda p: [p["ct"], "--out", p["tmp"] / "o.h5", "--slab", "0"],
     "both must be ≥ 1"),
    (CT, "negative δ/β", lambda p: [p["ct"], "--out", p["tmp"] / "o.h5", "--delta-beta", "-1"],
     "--delta-beta -1.0: must be a finite number > 0"),
    (CT, "distance with --phase none", lambda p: [p["dx"], "--out", p["tmp"] / "o.h5", "--phase", "none",
                                                  "--distances", "1e-4"], "uses no propagation distance"),
    (CT, "Paganin without a distance", lambda p: [p["dx"], "--out", p["tmp"] / "o.h5"],
     "needs one propagation distance"),
    (CT, "NaN in projection 7", lambda p: [p["dx_nan"], "--out", p["tmp"] / "o.h5", "--phase", "none"],
     "projections: NaN or infinite values in 1 frame(s), index 7"),
    (CT, "NaN in flat 1", lambda p: [p["dx_nan_flat"], "--out", p["tmp"] / "o.h5", "--phase", "none"],
     "flats: NaN or infinite values in 1 frame(s), index 1"),
    (CT, "--out is the input", lambda p: [p["ct"], "--out", p["ct"]], "is the input file"),
    (CT, "--out is another file", lambda p: [p["ct"], "--out", p["foreign"]],
     "not a ct-reconstruct output: left untouched"),
    (CT, "--out in a missing folder", lambda p: [p["ct"], "--out", p["tmp"] / "no" / "o.h5"],
     "does not exist; create it first"),
    (CT, "unknown layout, no paths", lambda p: [p["other"], "--out", p["tmp"] / "o.h5"], "--data-path"),
    (CT, "--data-path not in the file", lambda p: [p["other"], "--out", p["tmp"] / "o.h5", "--data-path",
                                                   "entry/data", "--angles-path", "entry/angles"],
     "'entry/data' not found in the file"),
    (CT, "angles without units", lambda p: [p["other"], "--out", p["tmp"] / "o.h5", "--data-path",
                                            "entry/imaging/data", "--image-key-path",
                                            "entry/instrument/imaging/image_key", "--angles-path",
                                            "entry/angles"], "state the angle units"),
    (CT, "50 angles for 180 projections", lambda p: [p["other"], "--out", p["tmp"] / "o.h5", "--data-path",
                                                     "entry/imaging/data", "--image-key-path",
                                                     "entry/instrument/imaging/image_key", "--angles-path",
                                                     "entry/short_angles", "--angles-units", "deg"],
     "50 angles for 183 frames"),
    (CT, "image key without --data-path", lambda p: [p["ct"], "--out", p["tmp"] / "o.h5", "--image-key-path",
                                                     "entry/k"], "need --data-path"),
    (CT, "entry not in the file", lambda p: [p["ct"], "--out", p["tmp"] / "o.h5", "--entries", "entry9"],
     "entry 'entry9' not found"),
    (AN, "volume missing", lambda p: [p["tmp"] / "nope.h5", "--out", p["tmp"] / "a.h5"], "not found"),
    (AN, "float volume", lambda p: [p["vol_float"], "--out", p["tmp"] / "a.h5"], "must be 8-bit unsigned"),
    (AN, "2-D volume", lambda p: [p["vol_2d"], "--out", p["tmp"] / "a.h5"], "must be 3-D"),
    (AN, "unfinished reconstruction", lambda p: [p["unfinished"], "--out", p["tmp"] / "a.h5"],
     "is incomplete"),
    (AN, "zero voxel size", lambda p: [p["vol"], "--out", p["tmp"] / "a.h5", "--voxel-size-um", "0"],
     "--voxel-size-um 0.0: must be a finite number > 0"),
    (AN, "threshold above 255", lambda p: [p["vol"], "--out", p["tmp"] / "a.h5", "--threshold", "300"],
     "--threshold 300.0: must lie in [0.0, 255.0]"),
    (AN, "strength without a filter", lambda p: [p["vol"], "--out", p["tmp"] / "a.h5", "--denoise-strength",
                                                 "0.3"], "needs --denoise"),
    (AN, "--out is the input", lambda p: [p["vol"], "--out", p["vol"]], "is the input file"),
    (AN, "--out exists", lambda p: [p["vol"], "--out", p["foreign"]], "exists and was left untouched"),
    (SM, "input missing", lambda p: [p["tmp"] / "nope.h5", "--out", p["tmp"] / "m.h5"],
     "input file not found"),
    (SM, "not an SXDM file", lambda p: [p["ct"], "--out", p["tmp"] / "m.h5"], "no SXDM scan"),
    (SM, "ROI of three numbers", lambda p: [SXDM, "--out", p["tmp"] / "m.h5", "--roi", "1,2,3"],
     "give four integers"),
    (SM, "empty ROI", lambda p: [SXDM, "--out", p["tmp"] / "m.h5", "--roi", "300,290,170,200"],
     "empty window"),
    (SM, "ROI off the stored frames", lambda p: [SXDM, "--out", p["tmp"] / "m.h5", "--roi", "0,10,0,10"],
     "must lie inside the stored frames"),
    (SM, "mask threshold 1.5", lambda p: [SXDM, "--out", p["tmp"] / "m.h5", "--mask-threshold", "1.5"],
     "--mask-threshold 1.5: must lie in (0.0, 1.0)"),
    (SM, "even median kernel", lambda p: [SXDM, "--out", p["tmp"] / "m.h5", "--median", "4"], "odd kernel"),
    (SM, "negative background", lambda p: [SXDM, "--out", p["tmp"] / "m.h5", "--background", "-1"],
     "--background -1.0: must be a finite number ≥ 0"),
    (SM, "unknown detector", lambda p: [SXDM, "--out", p["tmp"] / "m.h5", "--detector", "eiger9"],
     "detector 'eiger9' not found"),
    (SM, "--out is the input", lambda p: [SXDM, "--out", SXDM], "is the input file"),
    (SM, "--out exists", lambda p: [SXDM, "--out", p["foreign"]], "exists and was left untouched"),
    (SC, "maps file missing", lambda p: [p["tmp"] / "nope.h5"], "does not exist"),
    (SC, "not a maps file", lambda p: [p["ct"]], "is not an SXDM maps file"),
    (SC, "--out is an input", lambda p: [p["maps"], "--out", p["maps"]], "is the input file"),
    (SC, "--out exists", lambda p: [p["maps"], "--out", p["exists"]], "exists and was left untouched"),
    (SC, "confidence 1.5", lambda p: [p["maps"], "--confidence", "1.5"],
     "--confidence 1.5: must lie in (0.0, 1.0)"),
    (SC, "flagged fraction 2", lambda p: [p["maps"], "--max-flagged-fraction", "2"],
     "must lie in [0.0, 1.0]"),
    (SC, "negative bootstrap", lambda p: [p["maps"], "--bootstrap", "-1"], "must be ≥ 0 resamples"),
]


def run_case(command, make_argv, paths) -> tuple[int, str]:
    """Exit code and stderr of ``nmc-workbook command argv``."""
    argv = [command, *map(str, make_argv(paths))]
    if command in (CT, SM):
        argv.append("--quiet")
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue().strip()


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    return build_inputs(tmp_path_factory.mktemp("bad"))


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(f): f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file()}


@pytest.mark.parametrize("command, what, make_argv, message", CASES, ids=[f"{c[0]}: {c[1]}" for c in CASES])
def test_bad_input_is_refused_with_a_clear_message_and_nothing_written(paths, command, what, make_argv,
                                                                         message):
    before = _snapshot(paths["tmp"])
    code, err = run_case(command, make_argv, paths)
    assert code == 2, err
    assert message in err, err
    assert _snapshot(paths["tmp"]) == before  # no output created, no file touched


def test_there_are_at_least_30_cases_over_every_command():
    assert len(CASES) >= 30
    assert {c[0] for c in CASES} == {CT, AN, SM, SC}


def table() -> str:
    """Markdown table of every case and the message it gets."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = build_inputs(Path(tmp))
        rows = ["| # | command | bad input | exit | message |", "|---|---|---|---|---|"]
        for i, (command, what, make_argv, _) in enumerate(CASES, 1):
            code, err = run_case(command, make_argv, paths)
            err = err.replace(tmp, "…").replace(str(SXDM.parent), "…").replace("|", "\\|")
            rows.append(f"| {i} | `{command}` | {what} | {code} | {err} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
