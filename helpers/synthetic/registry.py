"""The bundled samples of ``data_samples/`` and the seeded functions that make them (``make data``).

Each entry maps a sample name to ``(module, function, description)``; the function is called as
``function(out_folder: Path) -> list[Path]`` and must be deterministic (explicit seeds), so that a
regenerated sample equals the committed one (a test checks this).
"""

from __future__ import annotations

import importlib
from pathlib import Path

SAMPLES: dict[str, tuple[str, str, str]] = {
    "sxdm_fig1_particle": (
        "helpers.synthetic.sxdm_samples",
        "write_fig1_sample",
        "SXDM series of the Fig. 1 particle (40x40 points, 20 eta, 64x120 ROI) + truth",
    ),
    "ct_powder_holotomo": (
        "helpers.synthetic.ct_samples",
        "write_ct_sample",
        "4-distance nano-CT scan (NXtomo) of a 24x128x128 powder phantom, with its truth",
    ),
    "ct_powder3d": (
        "helpers.synthetic.ct_samples",
        "write_ct3d_sample",
        "1-distance nano-CT scan (NXtomo) of a 128^3 powder phantom at the paper's CNR, with its truth",
    ),
}


def regenerate_samples(out_folder: Path, names: list[str] | None = None) -> list[Path]:
    """Run the registered sample builders (all, or ``names``) into ``out_folder``."""
    unknown = sorted(set(names or []) - set(SAMPLES))
    if unknown:
        raise KeyError(f"unknown sample(s) {unknown}; known: {sorted(SAMPLES)}")
    out_folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, (module_name, function_name, description) in SAMPLES.items():
        if names and name not in names:
            continue
        print(f"{name}: {description}", flush=True)
        builder = getattr(importlib.import_module(module_name), function_name)
        written.extend(builder(out_folder))
    if not SAMPLES:
        print("no samples registered yet")
    return written
