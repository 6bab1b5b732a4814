"""``nmc-workbook ct-analyse``: segment particles of an 8-bit nano-CT volume, measure voids (and shape).

Reads the volume memory-mapped or slab-wise (HDF5, TIFF, .npy; never modified), optionally denoises it
(``--denoise tv|nlm|median``, needed at the paper's CNR ≈ 2.3), fits the three grey phases (or takes
``--threshold``), labels and splits particles per cluster, measures every particle's
voids (grey below the void threshold, or with ``--void-test significance`` a ball-mean deficit
significant against the noise measured in the volume's own air), adds the morphology table when
``helpers.nanoct.morphology`` is installed, and writes one HDF5
file (particle labels, compressed; tables; parameters, units, input name and SHA-256 as attributes)
plus CSV tables beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import importlib.util
from pathlib import Path

import numpy as np

from helpers import cli_checks as checks
from helpers import nexus
from helpers.nanoct.part_files import parts_folder
from helpers.stages import stage


def add_arguments(parser: argparse.ArgumentParser, name: str = "ct-analyse") -> None:
    """Options of the ``ct-analyse`` sub-command."""
    parser.add_argument("volume", help="8-bit volume: .h5/.hdf5/.nxs, multi-page .tif, or .npy")
    parser.add_argument("--dataset", help="HDF5 dataset of the volume (needed if the file holds several)")
    parser.add_argument("--out", required=True, help="output HDF5 file (CSV tables are written beside it)")
    parser.add_argument("--voxel-size-um", type=float, default=0.025, help="voxel edge in µm (paper: 0.025)")
    parser.add_argument("--threshold", type=float,
                        help="manual NMC grey threshold (0–255); default: histogram fit (air/glue/NMC, "
                             "or NMC and one background), refused when the fit predicts an NMC mask "
                             "IoU < --min-predicted-iou")
    parser.add_argument("--void-threshold", type=float,
                        help="grey threshold for voids inside particles; default: air/NMC mid-grey of "
                             "the fit, or --threshold when given")
    parser.add_argument("--denoise", choices=("tv", "nlm", "median"),
                        help="denoise before the fit and threshold (needed at CNR ≲ 4; see "
                             "helpers.nanoct.denoise): tv (fast, default choice), nlm, median")
    parser.add_argument("--denoise-strength", type=float,
                        help="TV weight (default 0.2), NLM h in grey levels (30) or median edge (5)")
    parser.add_argument("--threshold-rule", choices=("crossing", "midpoint"),
                        help="fitted NMC threshold: weighted glue/NMC crossing (default) or glue/NMC "
                             "mid-grey (default with --denoise)")
    parser.add_argument("--min-predicted-iou", type=float, default=None,
                        help="refuse a fitted threshold whose mixture predicts a smaller NMC mask IoU "
                             "(default 0.75; 0 accepts every fit)")
    parser.add_argument("--void-test", choices=("threshold", "significance"), default="threshold",
                        help="how voids inside particles are found: threshold (default: grey below "
                             "--void-threshold, on the denoised grey after --denoise) or significance (a "
                             "ball-mean deficit ≥ --void-k-sigma σ of this volume's own noise of that "
                             "ball's mean, σ measured in its air; on the raw grey; for CNR ≲ 4, see "
                             "helpers.nanoct.void_significance)")
    parser.add_argument("--void-k-sigma", type=float, default=None,
                        help="significance factor of --void-test significance (default 3.7: one-sided "
                             "false-alarm probability 1e-4 per independent ball)")
    parser.add_argument("--air-region",
                        help="with --void-test significance: a box z0:z1,y0:y1,x0:x1 (voxels, end "
                             "excluded) of air (or one constant material) where the noise is measured; "
                             "default: found automatically (the lowest grey phase, ≥ 6 voxels from every "
                             "particle)")
    parser.add_argument("--h", type=float, default=1.0, help="h-maxima dynamic of the distance map, voxels")
    parser.add_argument("--min-particle-voxels", type=int, default=8, help="smaller NMC clusters are noise")
    parser.add_argument("--resolution-um", type=float, default=0.05,
                        help="void size counted as resolved (paper: 0.05 µm)")
    parser.add_argument("--no-morphology", action="store_true", help="skip the morphology table")
    parser.add_argument("--scratch-dir",
                        help="folder for the whole-volume mask and label arrays as memory-mapped files "
                             "(a temporary sub-folder, removed at the end; needs ~5–9 B per voxel of disk): "
                             "memory then follows the largest cluster, not the volume. Default: in RAM, or "
                             f"OUT.parts for volumes above {AUTO_SCRATCH_VOXELS:.1e} voxels")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    from helpers.cluster import add_scheduler_arguments

    add_scheduler_arguments(parser)  # clusters, voids and morphology per batch as Dask tasks


def _column_array(series) -> np.ndarray:
    """A table column as an HDF5-storable array (object columns as float, else as UTF-8 strings)."""
    values = series.to_numpy()
    if values.dtype != object:
        return values
    try:
        return values.astype(np.float64)
    except (TypeError, ValueError):
        return values.astype(str).astype("S")


#: volumes above this many voxels (5.4e8; in RAM the labelling can peak at 7.6 B/voxel, 4 GB here) keep their
#: whole-volume arrays memory-mapped in ``OUT.parts`` by default
AUTO_SCRATCH_VOXELS = 2**29

#: void sizes (local thickness) need one of these; both are core dependencies of the package
VOID_SIZE_MODULES = ("localthickness", "porespy")


def _validate(args: argparse.Namespace, src: Path) -> Path:
    """Every option and the output path, checked before the volume is read; returns ``--out``."""
    checks.positive("--voxel-size-um", args.voxel_size_um)
    checks.within("--threshold", args.threshold, 0.0, 255.0)
    checks.within("--min-predicted-iou", args.min_predicted_iou, 0.0, 1.0)
    checks.within("--void-threshold", args.void_threshold, 0.0, 255.0)
    checks.positive("--denoise-strength", args.denoise_strength)
    if args.denoise_strength is not None and args.denoise is None:
        raise ValueError("--denoise-strength needs --denoise tv|nlm|median")
    significance = getattr(args, "void_test", "threshold") == "significance"
    if not significance and (getattr(args, "air_region", None) or getattr(args, "void_k_sigma", None)):
        raise ValueError("--air-region and --void-k-sigma belong to --void-test significance")
    if significance and args.void_threshold is not None:
        raise ValueError("--void-threshold is the threshold rule's; --void-test significance judges voids "
                         "against the volume's own noise (drop one of the two)")
    checks.positive("--void-k-sigma", getattr(args, "void_k_sigma", None))
    checks.positive("--h", args.h)
    if args.min_particle_voxels < 1:
        raise ValueError(f"--min-particle-voxels {args.min_particle_voxels}: must be ≥ 1")
    checks.positive("--resolution-um", args.resolution_um)
    if not src.is_file():
        raise OSError(f"volume file {src} not found")
    out = checks.check_out_path(args.out, [src], overwrite=args.overwrite)
    if out.suffix.lower() == ".csv":
        raise ValueError(f"--out {out}: give the HDF5 file name (.h5); the CSV tables are written beside it")
    for table in _csv_paths(out).values():
        checks.check_out_path(table, [src], overwrite=args.overwrite)
    if not any(importlib.util.find_spec(m) for m in VOID_SIZE_MODULES):
        raise OSError("void sizes need localthickness (or porespy), not installed: "
                      "pip install localthickness")
    return out


def _csv_paths(out: Path) -> dict[str, Path]:
    stem = out.with_suffix("")
    return {name: Path(f"{stem}_{name}.csv") for name in ("particles", "voids", "morphology")}


def run(args: argparse.Namespace) -> int:
    """Run the analysis; returns 0 on success (errors raise ValueError/OSError/KeyError)."""
    if getattr(args, "scheduler", None) is not None and getattr(args, "_tasks", None) is None:
        from helpers.nanoct.segment_tasks import AnalyseTasks

        with AnalyseTasks(args) as args._tasks:  # one Dask client: clusters, voids, morphology as tasks
            return run(args)

    from helpers.nanoct import segment as seg
    from helpers.nanoct.volume_io import open_volume

    src = Path(args.volume)
    out = _validate(args, src)
    from helpers.cluster import check_scheduler

    check_scheduler(getattr(args, "scheduler", None), getattr(args, "workers", None))
    volume = open_volume(src, args.dataset)
    if getattr(args, "air_region", None):
        from helpers.nanoct.void_significance import parse_box

        parse_box(args.air_region, volume.shape)  # a malformed box is refused before the long work
    options = dict(threshold=args.threshold, h=args.h, min_particle_voxels=args.min_particle_voxels,
                   denoise=args.denoise, denoise_strength=args.denoise_strength,
                   threshold_rule=args.threshold_rule, min_predicted_iou=args.min_predicted_iou)
    tasks = getattr(args, "_tasks", None)  # --scheduler: clusters and particles as Dask tasks
    with contextlib.ExitStack() as scratch_stack:
        options["scratch_dir"] = _scratch_dir(args, out, volume.shape, scratch_stack)
        with stage("segment"):
            result = (seg.segment_particles(volume, **options) if tasks is None
                      else tasks.segment(volume, out, **options))
        return _analyse(args, src, out, volume, result, tasks)


def _scratch_dir(args, out: Path, shape, stack) -> str | None:
    """The temporary folder of the memory-mapped whole-volume arrays (removed by ``stack``), or None."""
    import shutil
    import tempfile

    root = getattr(args, "scratch_dir", None)
    if root is None and float(np.prod(shape, dtype=float)) > AUTO_SCRATCH_VOXELS:
        root = parts_folder(out)
    if root is None:
        return None
    root = Path(root)
    made = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    folder = tempfile.mkdtemp(prefix="ct-analyse-scratch-", dir=root)

    def remove():
        shutil.rmtree(folder, ignore_errors=True)
        if made and root.is_dir() and not any(root.iterdir()):
            root.rmdir()

    stack.callback(remove)
    return folder


def _volume_noise(args, volume, result):
    """σ of ball means in the air of ``volume`` (raw grey), for ``--void-test significance``."""
    from helpers.nanoct import void_significance as vs

    if result.phase_fit is not None:  # three phases resolved: the air is below the air/glue threshold
        max_grey = float(result.phase_fit.threshold_air)
    else:  # one background (air and glue merged, or one absent) below the NMC threshold
        max_grey = float(result.threshold)
    k_sigma = vs.DEFAULT_K_SIGMA if args.void_k_sigma is None else args.void_k_sigma
    return vs.air_noise(volume, result.labels, max_grey=max_grey, classify=result.denoised,
                        air_region=args.air_region, k_sigma=k_sigma)


def _analyse(args, src: Path, out: Path, volume, result, tasks) -> int:
    """Voids, morphology and the output files, from the segmentation ``result``."""
    import h5py
    import pandas as pd

    import helpers
    from helpers.nanoct import segment as seg
    from helpers.nanoct import voids as vd
    from helpers.nanoct.denoise import DEFAULT_STRENGTH
    from helpers.nanoct.volume_io import file_sha256

    noise = None
    if getattr(args, "void_test", "threshold") == "significance":
        with stage("void noise"):
            noise = _volume_noise(args, volume, result)
        void_threshold = float("nan")  # not used: each particle's level and the air level set the cut
        void_grey = None  # the tasks read the input volume, as the in-process call does
    else:
        if result.denoised is not None:
            volume = result.denoised  # voids are measured on the grey values the threshold was fitted to
        if args.void_threshold is not None:
            void_threshold = args.void_threshold
        elif result.phase_fit is not None:
            void_threshold = result.phase_fit.void_threshold
        else:
            void_threshold = result.threshold
        void_grey = result.denoised
    void_args = (result.labels, void_threshold, args.voxel_size_um)
    with stage("voids"):
        if tasks is None:
            particles, voids = vd.analyse_voids(volume, *void_args, resolution_um=args.resolution_um,
                                                boxes=result.boxes, significance=noise)
        else:
            particles, voids = tasks.voids(out, src, args.dataset, *void_args, volume=void_grey,
                                           resolution_um=args.resolution_um, boxes=result.boxes,
                                           significance=noise)
    particles["defective"] = seg.classify_defective(particles.void_fraction.fillna(0.0),
                                                    particles.solidity.fillna(1.0))
    particles["cluster"] = result.cluster_of[particles.label.to_numpy() - 1]
    morphology = None
    if not args.no_morphology and importlib.util.find_spec("helpers.nanoct.morphology") is not None:
        from helpers.nanoct import morphology as morph

        scheduler = getattr(args, "scheduler", None)
        with stage("morphology"):
            if scheduler is None:
                morphology = morph.particle_table(result.labels, args.voxel_size_um)
            else:
                from helpers.nanoct.morphology_tasks import particle_table_on

                morphology = particle_table_on(tasks.client, result.labels, args.voxel_size_um,
                                               parts_folder(out))

    with stage("write"), checks.atomic_output(out) as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update({
            "program": f"nmc-workbook ct-analyse {helpers.__version__}",
            "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "input_file": src.name, "input_dataset": args.dataset or "", "input_sha256": file_sha256(src),
            "voxel_size_um": args.voxel_size_um, "nmc_threshold_grey": result.threshold,
            "void_threshold_grey": void_threshold, "h_maxima_voxels": args.h,
            "min_particle_voxels": args.min_particle_voxels,
            "denoise_method": args.denoise or "none",
            "denoise_strength": (float(DEFAULT_STRENGTH.get(args.denoise, np.nan))
                                 if args.denoise_strength is None else args.denoise_strength),
            "threshold_rule": args.threshold_rule or ("midpoint" if args.denoise else "crossing"),
            "phases_found": result.phases_found, "predicted_nmc_mask_iou": result.predicted_iou,
            "resolution_um": args.resolution_um,
            "n_particles": result.n_particles, "n_clusters": result.n_clusters,
            "n_removed_small_clusters": result.n_removed_small,
            "defective_share": float(particles.defective.mean()),
        })
        f.attrs["void_test"] = getattr(args, "void_test", "threshold")
        if noise is not None:
            g = f.create_group("void_test")
            g.attrs.update({
                "test": "significance", "k_sigma": noise.k_sigma, "air_region": noise.region,
                "air_region_voxels": noise.region_voxels, "air_grey": noise.air_grey,
                "envelope_closing_radius_voxels": noise.closing_radius,
                "description": "a void needs a ball-mean grey deficit below its particle's level of at "
                               "least k_sigma × the σ of that ball's mean, σ measured in the air region "
                               "of this volume (raw grey); void voxels: radius-1 mean below the mid-grey "
                               "of particle level and air_grey",
                "units": "grey values of the 8-bit volume; radii in voxels",
            })
            g["ball_radius_voxels"] = np.array(noise.radii, np.int64)
            g["sigma_ball_mean_grey"] = np.array([noise.sigma[r] for r in noise.radii])
            g["air_positions"] = np.array([noise.positions[r] for r in noise.radii], np.int64)
        if result.phase_fit is not None:
            fit = result.phase_fit
            g = f.create_group("phase_fit")
            g.attrs["phases"] = ["air", "glue", "NMC"]
            g.attrs["units"] = "grey values of the 8-bit volume"
            for key in ("means", "sigmas", "weights", "separations", "counts"):
                g[key] = getattr(fit, key)
            for key in ("threshold_nmc", "threshold_nmc_sigma", "threshold_air", "threshold_air_sigma"):
                g.attrs[key] = getattr(fit, key)
        ds = f.create_dataset("labels", data=result.labels, chunks=True, compression="gzip", shuffle=True)
        ds.attrs["description"] = "particle labels, 0 = background, internal voids belong to their particle"
        ds.attrs["axes"] = "z, y, x"
        nexus.mark_volume(f, "labels", voxel_size_m=args.voxel_size_um * 1e-6)
        for name, table in (("particles", particles), ("voids", voids), ("morphology", morphology)):
            if table is None:
                continue
            g = f.create_group(name)
            for column in table.columns:
                g[column] = _column_array(table[column])
            g.attrs["units"] = "µm, µm³; fractions dimensionless; radial = distance / particle r_eq"
        f.attrs["complete"] = True
    csv = _csv_paths(out)
    for name, table in (("particles", particles), ("voids", voids), ("morphology", morphology)):
        if table is not None:
            with checks.atomic_output(csv[name]) as tmp:
                pd.DataFrame(table).to_csv(tmp, index=False)
    fitted = ("" if np.isnan(result.predicted_iou) else
              f" ({result.phases_found}; predicted NMC mask IoU {result.predicted_iou:.2f})")
    if noise is not None:
        sigmas = ", ".join(f"{noise.sigma[r]:.2f}" for r in noise.radii)
        print(f"void test: significance, k = {noise.k_sigma:.1f}; σ of ball means (r = "
              f"{', '.join(map(str, noise.radii))} voxels) {sigmas} grey, air grey {noise.air_grey:.0f}, "
              f"{noise.region}")
    print(f"{result.n_particles} particles in {result.n_clusters} clusters; NMC threshold "
          f"{result.threshold:.1f}{fitted}; defective {particles.defective.mean():.1%}; written {out.name}")
    return 0
