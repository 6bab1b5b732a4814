"""``nmc-workbook sxdm-maps INPUT --out maps.h5``: a thin layer over :func:`helpers.sxdm.reduce.reduce`."""

from __future__ import annotations

from pathlib import Path

from helpers import cli_checks as checks


def _roi(text: str):
    parts = [p for p in text.replace(",", " ").split() if p]
    if len(parts) != 4:
        raise ValueError(f"--roi {text!r}: give four integers row0,row1,col0,col1 (full-detector pixels)")
    try:
        return tuple(int(p) for p in parts)
    except ValueError as err:
        raise ValueError(f"--roi {text!r}: give four integers row0,row1,col0,col1") from err


def add_arguments(parser, name: str = "sxdm-maps") -> None:
    """Options of ``sxdm-maps``."""
    parser.add_argument("input", help="BLISS dataset file (all SXDM entries) or XSOCS master file")
    parser.add_argument("--out", required=True, help="results HDF5 file (group /maps)")
    parser.add_argument("--detector", default=None, help="detector name (default: the only/known one)")
    parser.add_argument("--roi", default=None, help="detector ROI row0,row1,col0,col1 (full-detector px)")
    parser.add_argument("--method", choices=("com", "gauss"), default="gauss",
                        help="3-D centre of mass or Poisson 3-D Gaussian fit (default: gauss)")
    parser.add_argument("--mask-threshold", type=float, default=0.2,
                        help="mask = intensity >= this fraction of the maximum (default 0.2, as the paper)")
    parser.add_argument("--reference-d", type=float, default=None,
                        help="d_ref of the strain in Å (default: mean d over the mask)")
    parser.add_argument("--background", default="auto", help="'auto' or counts per pixel per frame")
    parser.add_argument("--min-counts", type=float, default=50.0, help="net counts below which a point "
                        "is flagged low_counts (default 50)")
    parser.add_argument("--saturation", type=float, default=None,
                        help="counts/pixel/frame treated as saturated (default: Maxipix 11810)")
    parser.add_argument("--median", type=int, default=None, help="odd median kernel per frame (default off)")
    parser.add_argument("--memory-mb", type=float, default=256.0, help="memory budget of the frame chunks "
                        "(default 256 MB; the process adds ~200 MB of libraries)")
    parser.add_argument("--drift", choices=("estimate", "correct", "off"), default="estimate",
                        help="sample drift between eta maps: estimate and flag (default), correct it "
                        "(second pass on interpolated frames), or off")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _background(text: str):
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError as err:
        raise ValueError(f"--background {text!r}: give 'auto' or counts per pixel per frame") from err
    checks.positive("--background", value, allow_zero=True)
    return value


def validate(args):
    """Every option, the output path and the input series, checked before the reduction starts.

    Returns the opened :class:`helpers.sxdm.io.SxdmSeries` (metadata only; frames are read later).
    """
    from helpers.sxdm.io import open_sxdm_series

    background = _background(args.background)
    checks.within("--mask-threshold", args.mask_threshold, 0.0, 1.0, closed=False)
    checks.positive("--reference-d", args.reference_d)
    checks.positive("--min-counts", args.min_counts, allow_zero=True)
    checks.positive("--saturation", args.saturation)
    checks.positive("--memory-mb", args.memory_mb)
    if args.median is not None and (args.median < 1 or args.median % 2 == 0):
        raise ValueError(f"--median {args.median}: give an odd kernel size ≥ 1 (e.g. 3)")
    roi = _roi(args.roi) if args.roi else None
    if roi is not None and not (roi[0] < roi[1] and roi[2] < roi[3]):
        raise ValueError(f"--roi {args.roi!r}: empty window; need row0 < row1 and col0 < col1")
    source = Path(args.input)
    if not source.is_file():
        raise OSError(f"{source}: input file not found")
    out = checks.check_out_path(args.out, [source], overwrite=args.overwrite)
    series = open_sxdm_series(source, detector=args.detector, roi=roi)
    return series, out, background


def run(args) -> int:
    """Reduce ``args.input`` and write ``args.out``; print a one-line summary."""
    from helpers.sxdm.reduce import MAXIPIX_SATURATION, flag_summary, reduce

    series, out, background = validate(args)
    maps = reduce(
        series,
        out,
        method=args.method,
        mask_threshold=args.mask_threshold,
        reference_d=args.reference_d,
        background=background,
        min_counts=args.min_counts,
        saturation=MAXIPIX_SATURATION if args.saturation is None else args.saturation,
        median_size=args.median,
        memory_limit_mb=args.memory_mb,
        progress=not args.quiet,
        drift=args.drift,
    )
    flags = {k: v for k, v in flag_summary(maps).items() if v}
    print(
        f"{out}: {maps.shape[0]} x {maps.shape[1]} points, {int(maps.mask.sum())} in the mask, "
        f"mean d {maps.reference_d:.5f} Å, flags {flags or 'none'}"
    )
    print(drift_summary(maps.params))
    return 0


def drift_summary(params: dict) -> str:
    """One line on the eta-map drift recorded in a reduction's parameters."""
    if "drift_max_um" not in params:
        return f"drift: {params.get('drift_mode', 'off')}"
    if not params["drift_measurable"]:
        return (f"drift: not measurable on this scan (median error {params['drift_typical_error_um']} µm per "
                "eta map); not checked")
    verdict = "FLAGGED" if params["drift_flagged"] else "ok"
    done = "corrected" if params["drift_mode"] == "correct" else "not corrected"
    return (f"drift: max {params['drift_max_um'] * 1e3:.1f} nm between eta maps along "
            f"{params['drift_direction_xy']} (threshold {params['drift_threshold_um'] * 1e3:.1f} nm): "
            f"{verdict}, {done}")
