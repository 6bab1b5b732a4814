"""``nmc-workbook correlate``: SXDM maps and nano-CT voids of the same particle, registered and compared."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser, name: str = "correlate") -> None:
    """Options of the ``correlate`` sub-command."""
    parser.add_argument("maps", type=Path, help="SXDM maps file (nmc-workbook sxdm-maps output)")
    parser.add_argument(
        "ct_analysis", type=Path, help="nano-CT analysis file (nmc-workbook ct-analyse output)"
    )
    parser.add_argument(
        "--volume", type=Path, help="grey volume the analysis was run on (default: its input_file)"
    )
    parser.add_argument(
        "--dataset", help="HDF5 dataset of the grey volume (default: the analysis's input_dataset)"
    )
    parser.add_argument("--out", type=Path, required=True, help="output HDF5 file")
    parser.add_argument(
        "--angle-deg",
        type=float,
        required=True,
        help="rough in-plane rotation SXDM → CT (deg): p_ct = R(angle) p_sxdm + shift",
    )
    parser.add_argument(
        "--shift-um",
        type=float,
        nargs=2,
        required=True,
        metavar=("X", "Y"),
        help="rough shift (µm) of that map; CT (x, y) = (column, row) × voxel size",
    )
    parser.add_argument(
        "--axis", type=int, default=0, help="CT volume axis along the SXDM beam (default 0 = z)"
    )
    parser.add_argument("--label", type=int, help="CT cluster label of the particle (default: the largest)")
    parser.add_argument("--voxel-size-um", type=float, help="CT voxel size when the analysis file lacks it")
    parser.add_argument("--footprint-um", type=float, help="SXDM beam FWHM in µm (default: the scan step)")
    parser.add_argument("--block-um", type=float, default=0.3, help="block size of the statistics (µm)")
    parser.add_argument("--min-ncc", type=float, default=0.9, help="registration acceptance threshold")
    parser.add_argument(
        "--recovery-calibration",
        type=Path,
        help="void-recovery calibration JSON of the CT chain at the data's dose: corrects the d coupling "
        "for the void volume the CT misses (refused when the volume's contrast-to-noise differs)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def run(args: argparse.Namespace) -> int:
    """Register, associate, write; prints one line per result. Errors raise ValueError/OSError."""
    from helpers import correlate as cr
    from helpers import void_recovery as vr

    for role, p in (("maps", args.maps), ("CT analysis", args.ct_analysis)):
        if not Path(p).is_file():
            raise OSError(f"{role} file {p} does not exist")
    if args.out.exists() and not args.overwrite:
        raise OSError(f"{args.out} exists: pass --overwrite to replace it")
    calibration = vr.read_calibration(args.recovery_calibration) if args.recovery_calibration else None
    initial = cr.Alignment(args.angle_deg, tuple(args.shift_um))
    reg, res = cr.correlate_files(
        args.maps,
        args.ct_analysis,
        initial,
        volume_path=args.volume,
        dataset=args.dataset,
        label=args.label,
        axis=args.axis,
        footprint_fwhm_um=args.footprint_um,
        block_um=args.block_um,
        voxel_size_um=args.voxel_size_um,
        min_ncc=args.min_ncc,
    )
    inputs = {"maps": args.maps, "ct_analysis": args.ct_analysis}
    if args.volume is not None:
        inputs["volume"] = args.volume
    params = {
        k: v for k, v in vars(args).items() if not k.startswith("_") and k not in ("maps", "ct_analysis")
    }
    corrected = None
    if calibration is not None:
        inputs["recovery_calibration"] = args.recovery_calibration
        recovery = vr.recovery_for_files(
            calibration, args.ct_analysis, args.volume, args.dataset, args.label, args.voxel_size_um
        )
        corrected = vr.correct_coupling(res["d"], recovery)
    cr.write_result(args.out, reg, res, inputs, params, corrected)
    a = reg.alignment
    print(
        f"registration: angle {a.angle_deg:.2f} deg, shift ({a.shift_um[0]:.3f}, {a.shift_um[1]:.3f}) um, "
        f"NCC {reg.ncc:.3f}, relative residual {reg.residual_rel:.3f}"
    )
    for name, r in res.items():
        print(
            f"{name}: r = {r.r:.2f} [{r.r_ci[0]:.2f}, {r.r_ci[1]:.2f}], permutation p = {r.p_value:.4f}, "
            f"{r.verdict}; coupling {r.coupling:.3g} [{r.coupling_ci[0]:.3g}, {r.coupling_ci[1]:.3g}]"
        )
    if corrected is not None:
        print(
            f"d coupling per unit true void fraction (CT void-volume recovery {corrected.recovery:.3f} ± "
            f"{corrected.recovery_sigma:.3f}): {corrected.coupling:.3g} "
            f"[{corrected.coupling_ci[0]:.3g}, {corrected.coupling_ci[1]:.3g}]"
        )
    print(f"written {args.out.name}")
    return 0


def run_ct_chain(
    scan, work, name: str, center_px, dataset: str = "/volume_8bit", voxel_size_um: float = 0.025
):
    """``ct-reconstruct`` then ``ct-analyse`` (Otsu NMC threshold, no morphology) of one scan into
    ``work``, as from a shell; returns ``(analysis_path, recon_path)``. Raises ``RuntimeError`` with
    the exit code when a command fails (its message is printed above)."""
    from helpers import correlate
    from helpers.cli import main as workbook

    work = Path(work)
    recon, analysis = work / f"{name}_recon.h5", work / f"{name}_analysis.h5"
    status = workbook(["ct-reconstruct", str(scan), "--out", str(recon), "--center", str(center_px),
                       "--overwrite", "--quiet"])
    if status != 0:
        raise RuntimeError(f"ct-reconstruct failed on {scan} (exit {status}): see its message above")
    threshold = correlate.otsu_threshold(recon, dataset)
    status = workbook(["ct-analyse", str(recon), "--dataset", dataset, "--out", str(analysis),
                       "--voxel-size-um", str(voxel_size_um), "--threshold", str(threshold),
                       "--no-morphology", "--overwrite"])
    if status != 0:
        raise RuntimeError(f"ct-analyse failed on {recon} (exit {status}): see its message above")
    return analysis, recon


# ----------------------------------------------------------------------------------------------
# files
# ----------------------------------------------------------------------------------------------
