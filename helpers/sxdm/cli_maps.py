"""``nmc-workbook sxdm-maps INPUT --out maps.h5``: a thin layer over :func:`helpers.sxdm.reduce.reduce`.

Several inputs: ``sxdm-maps IN1.h5 IN2.h5 … --out-dir DIR`` (one task per scan, :mod:`helpers.sxdm.batch`),
in-process or on Dask with ``--scheduler`` (:mod:`helpers.cluster`).
"""

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
    parser.add_argument("input", nargs="+",
                        help="BLISS dataset file(s) (all SXDM entries) or XSOCS master file(s)")
    parser.add_argument("--out", default=None, help="results HDF5 file (group /maps) of the one input")
    parser.add_argument("--out-dir", default=None, help="folder for several inputs: DIR/<input stem>_maps.h5")
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
    from helpers.cluster import add_scheduler_arguments

    add_scheduler_arguments(parser)


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

    background, roi = _check_options(args)
    if args.out is None:
        raise ValueError("give --out FILE for one input, or --out-dir DIR")
    source = Path(args.input[0])
    if not source.is_file():
        raise OSError(f"{source}: input file not found")
    out = checks.check_out_path(args.out, [source], overwrite=args.overwrite)
    series = open_sxdm_series(source, detector=args.detector, roi=roi)
    return series, out, background


def _check_options(args):
    """The options shared by one and several inputs; returns (background, roi)."""
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
    return background, roi


def run(args) -> int:
    """Reduce ``args.input`` and write ``args.out``; print a one-line summary."""
    from helpers.sxdm.reduce import MAXIPIX_SATURATION, flag_summary, reduce

    if args.out_dir is not None or args.scheduler is not None or len(args.input) > 1:
        return _run_many(args)
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


def _run_many(args) -> int:
    """One task per input into ``--out-dir`` (in-process or on ``--scheduler``); 1 if any scan failed."""
    import sys

    from helpers.cluster import check_scheduler, dask_client
    from helpers.sxdm.batch import plan_outputs, reduce_many
    from helpers.sxdm.reduce import MAXIPIX_SATURATION

    if args.out is not None or args.out_dir is None:
        raise ValueError("several inputs or --scheduler: give --out-dir DIR (not --out)")
    background, roi = _check_options(args)
    check_scheduler(args.scheduler, args.workers)
    pairs = plan_outputs(args.input, args.out_dir)  # missing or clashing inputs: an error before any work
    existing = [o for _, o in pairs if Path(o).exists()]
    if existing and not args.overwrite:
        raise OSError(f"{', '.join(existing[:5])} exist(s): pass --overwrite, or choose another --out-dir")
    options = dict(detector=args.detector, roi=roi, method=args.method, mask_threshold=args.mask_threshold,
                   reference_d=args.reference_d, background=background, min_counts=args.min_counts,
                   saturation=MAXIPIX_SATURATION if args.saturation is None else args.saturation,
                   median_size=args.median, memory_limit_mb=args.memory_mb, drift=args.drift)
    with dask_client(args.scheduler, args.workers, args.connect_timeout, quiet=args.quiet) as client:
        outcomes = reduce_many(args.input, args.out_dir, options, client, quiet=args.quiet)
    for o in outcomes:
        if o.ok:
            v = o.value
            print(f"{v['output']}: {v['shape'][0]} x {v['shape'][1]} points, {v['n_mask']} in the mask, "
                  f"mean d {v['reference_d']:.5f} Å, flags {v['flags'] or 'none'}")
            print(f"  {drift_summary(v['params'])}")
        else:
            print(f"nmc-workbook sxdm-maps: error: {o.item[0]}: {type(o.error).__name__}: {o.error} "
                  "(no output written)", file=sys.stderr)
    failed = sum(not o.ok for o in outcomes)
    if failed:
        print(f"{failed} of {len(outcomes)} scans failed, the others were written", file=sys.stderr)
    return 1 if failed else 0


def drift_summary(params: dict) -> str:
    """One line on the eta-map drift recorded in a reduction's parameters."""
    if "drift_max_um" not in params:
        return f"drift: {params.get('drift_mode', 'off')}"
    if not params["drift_measurable"]:
        return (f"drift: not measurable on this scan (median error {params['drift_typical_error_um']} µm per "
                "eta map); not checked")
    verdict = "FLAGGED" if params["drift_flagged"] else "ok"
    done = "corrected" if params["drift_mode"] == "correct" else "not corrected"
    confirmed = params.get("drift_confirmed_um")
    seen = (f"confirmed {confirmed * 1e3:.1f} nm (max {params['drift_max_um'] * 1e3:.1f} nm) between eta maps"
            if confirmed is not None else f"max {params['drift_max_um'] * 1e3:.1f} nm between eta maps")
    return (f"drift: {seen} along {params['drift_direction_xy']} (threshold "
            f"{params['drift_threshold_um'] * 1e3:.1f} nm; the flag needs the shift in both halves of the "
            f"particle): {verdict}, {done}")
