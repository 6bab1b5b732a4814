"""Nano-CT segmentation stage in one import: grey phases → NMC particles; matching for validation.

The stage lives in three modules by purpose, re-exported here so that ``from helpers.nanoct import
segment as seg`` reaches the whole chain the paper's SI describes (ImageJ + OriginPro, here in 3-D and
bounded in memory):

- :mod:`helpers.nanoct.phases`: three-phase histogram fit and NMC threshold (steps 1–2);
- :mod:`helpers.nanoct.particles`: NMC clusters, per-cluster (tiled) watershed, defective particles
  (steps 3–4);
- :mod:`helpers.nanoct.matching`: IoU matching against reference labels (tests, notebooks, benchmarks).

Figures of this stage are in :mod:`helpers.nanoct.segment_figures`.
"""

from __future__ import annotations

from helpers.nanoct.matching import (  # noqa: F401
    MatchReport,
    best_partners,
    match_labels,
)
from helpers.nanoct.particles import (  # noqa: F401
    Segmentation,
    bounding_boxes,
    classify_defective,
    label_clusters,
    merge_by_relative_dynamic,
    padded_box,
    segment_particles,
    solidity,
    split_clusters,
    touches_border,
    watershed_crop,
    watershed_whole_volume,
)
from helpers.nanoct.phases import (  # noqa: F401
    PHASE_NAMES,
    NmcThreshold,
    PhaseFit,
    fit_three_phases,
    grey_histogram,
    mask_iou_by_threshold,
    nmc_fraction_change,
    nmc_mask,
    nmc_threshold_auto,
)
