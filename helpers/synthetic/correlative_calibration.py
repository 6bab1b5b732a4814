"""Calibration phantoms for the CT's void-volume recovery (the truth-free correction of notebook 09).

Independent crystals of the correlative model (:mod:`helpers.synthetic.correlative`, seeds that no
analysed particle uses) are rendered by the same CT forward model (same dose, propagation distance,
number of projections), reconstructed and segmented by the same chain
(:func:`helpers.cli_correlate.run_ct_chain`), and the voids the chain found are scored against the voids
rendered from the spheres that define them (:func:`helpers.correlative.ct_truth_masks`) with
:func:`helpers.void_recovery.void_detection_record`. The calibration phantoms draw void diameters from a
wider range than the analysed particle's design (0.06–0.28 µm against 0.10–0.20 µm), so that the
detection curve is measured across the sizes and the fold with the particle's *measured* void sizes
does the work, not a shared size distribution.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

from helpers import cli_correlate, correlate, void_recovery
from helpers.synthetic import correlative

CALIBRATION_VERSION = "2"  # 2: envelope closed by a 2-voxel ball (found_void_mask)
CALIBRATION_SEEDS = tuple(range(1000, 1006))  # analysed particles use seeds < 100
CALIBRATION_VOID_DIAMETER_UM = (0.06, 0.28)


def calibration_design(design: correlative.CorrelativeDesign | None = None) -> correlative.CorrelativeDesign:
    """The phantoms' design: the analysed design with voids drawn over 0.06–0.28 µm."""
    return replace(design or correlative.CorrelativeDesign(), void_diameter_um=CALIBRATION_VOID_DIAMETER_UM)


def calibrate_phantom(seed: int, design, work, flat_counts: float = 2000.0) -> tuple[dict, float]:
    """One phantom through the forward model and the CT chain: (detection record, contrast-to-noise)."""
    work = Path(work)
    particle = correlative.make_particle(design, seed)
    scan = correlative.write_ct(particle, work / f"phantom{seed}.nx", seed=seed + 1, flat_counts=flat_counts)
    centre = (design.ct_size_vox - 1) / 2
    log = io.StringIO()
    try:  # the commands' progress lines would only clutter a notebook that builds the calibration
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            analysis, recon = cli_correlate.run_ct_chain(
                scan, work, f"phantom{seed}", centre, voxel_size_um=design.voxel_um
            )
    except RuntimeError as err:
        raise RuntimeError(f"calibration phantom {seed}: {err}\n{log.getvalue()}") from err
    labels, grey, void_threshold, voxel = correlate.read_ct_analysis(analysis, recon, "/volume_8bit")
    particle_mask, found, _ = correlate.found_void_mask(labels, grey, void_threshold)
    _, true_void = correlative.ct_truth_masks(particle)
    record = void_recovery.void_detection_record(found, true_void, voxel)
    for path in (scan, recon, analysis, *Path(work).glob(f"phantom{seed}_analysis_*.csv")):
        Path(path).unlink(missing_ok=True)
    return record, void_recovery.volume_cnr(grey, particle_mask, void_threshold)


def calibrate(
    seeds=CALIBRATION_SEEDS, design=None, flat_counts: float = 2000.0, work=None
) -> void_recovery.VoidRecoveryCalibration:
    """Run every phantom (≈ 20 s each on two cores) and collect the calibration."""
    from helpers.paths import cache_dir

    des = calibration_design(design)
    work = Path(work) if work is not None else cache_dir() / "correlative" / "calibration_work"
    work.mkdir(parents=True, exist_ok=True)
    records, cnr = [], []
    for seed in seeds:
        rec, c = calibrate_phantom(seed, des, work, flat_counts)
        records.append(rec)
        cnr.append(c)
    info = {"seeds": list(seeds), "flat_counts": flat_counts, "design": asdict(des),
            "version": CALIBRATION_VERSION}
    return void_recovery.VoidRecoveryCalibration(records, cnr, des.voxel_um, info=info)


def cached_calibration(
    seeds=CALIBRATION_SEEDS, design=None, flat_counts: float = 2000.0, force: bool = False
):
    """:func:`calibrate`, computed once into the workbook's cache (a JSON file keyed by its inputs)."""
    import numpy as np

    from helpers.paths import cache_dir

    des = calibration_design(design)
    key = json.dumps(
        {"v": CALIBRATION_VERSION, "sample": correlative.SAMPLE_VERSION, "design": asdict(des),
         "seeds": list(seeds), "flat_counts": flat_counts},
        sort_keys=True,
    )
    folder = cache_dir() / "correlative"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"calibration_{hashlib.sha256(key.encode()).hexdigest()[:12]}.json"
    if path.is_file() and not force:
        cal = void_recovery.VoidRecoveryCalibration.from_json(path.read_text())
        cal.cnr = np.asarray(cal.cnr, float)
        return cal
    cal = calibrate(seeds, design, flat_counts)
    fd, tmp = tempfile.mkstemp(prefix=".calibration.", suffix=".partial", dir=folder)
    with os.fdopen(fd, "w") as fh:
        fh.write(cal.to_json())
    os.replace(tmp, path)
    cal.cnr = np.asarray(cal.cnr, float)
    return cal
