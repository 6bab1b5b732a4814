"""Compare a segmentation with reference labels: IoU matching, over- and under-segmentation.

Used by the tests, the notebooks and the benchmarks to score a segmentation against the phantom's
labels; nothing here imports the synthetic forward models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class MatchReport:
    """IoU matching of predicted particles to reference particles.

    ``matched``: reference particles with a predicted one at IoU ≥ ``iou_min`` (one-to-one since
    IoU > 0.5 is unique); ``over_segmented``: reference particles split over ≥ 2 predicted labels
    that each hold ≥ ``part_min`` of it; ``under_segmented``: predicted labels holding ≥ ``part_min``
    of each of ≥ 2 reference particles (of each reference particle's volume). Rates are per reference
    (over) and per predicted (under) particle.
    """

    n_reference: int
    n_predicted: int
    matched: int
    iou_of_reference: np.ndarray
    over_segmented: int
    under_segmented: int
    iou_min: float

    @property
    def matched_fraction(self) -> float:
        return self.matched / max(self.n_reference, 1)

    @property
    def over_rate(self) -> float:
        return self.over_segmented / max(self.n_reference, 1)

    @property
    def under_rate(self) -> float:
        return self.under_segmented / max(self.n_predicted, 1)


def _contingency(predicted, reference, slab: int = 32):
    """Overlap counts of every (reference, predicted) label pair, both labels > 0, sorted by pair:
    ``skimage.metrics.contingency_table`` of each ``z``-slab, summed (memory stays per slab)."""
    from scipy import sparse
    from skimage.metrics import contingency_table

    if predicted.shape != reference.shape:
        raise ValueError(f"predicted labels {predicted.shape} and reference labels {reference.shape} differ")
    shape = (int(np.max(reference)) + 1, int(np.max(predicted)) + 1)
    table = sparse.csr_array(shape, dtype=np.float64)
    for z0 in range(0, predicted.shape[0], slab):
        part = contingency_table(np.asarray(reference[z0 : z0 + slab]).astype(np.int64),
                                 np.asarray(predicted[z0 : z0 + slab]).astype(np.int64), sparse_type="array")
        part.resize(shape)
        table = table + part
    size_r = np.rint(table.sum(axis=1)).astype(np.int64)
    size_p = np.rint(table.sum(axis=0)).astype(np.int64)
    both = table[1:, 1:].tocoo()
    pr, pp = both.row.astype(np.int64) + 1, both.col.astype(np.int64) + 1
    order = np.lexsort((pp, pr))
    return pr[order], pp[order], np.rint(both.data[order]).astype(np.int64), size_p, size_r


def best_partners(predicted: np.ndarray, reference: np.ndarray):
    """For every predicted label, the reference label it overlaps most and their IoU (pandas table
    with ``label``, ``reference``, ``iou``; reference 0 and IoU 0 where it overlaps none)."""
    import pandas as pd

    pr, pp, inter, size_p, size_r = _contingency(predicted, reference)
    iou = inter / (size_r[pr] + size_p[pp] - inter)
    labels = np.flatnonzero(size_p[1:]) + 1
    best_ref = np.zeros(size_p.size, np.int64)
    best_iou = np.zeros(size_p.size)
    order = np.lexsort((iou, pp))  # per predicted label, the highest IoU last
    best_ref[pp[order]] = pr[order]
    best_iou[pp[order]] = iou[order]
    return pd.DataFrame({"label": labels, "reference": best_ref[labels], "iou": best_iou[labels]})


def match_labels(predicted: np.ndarray, reference: np.ndarray, iou_min: float = 0.8, part_min: float = 0.1):
    """Match predicted to reference labels by intersection over union (sparse contingency table,
    accumulated over ``z``-slabs so memory stays ~25 B per slab voxel)."""
    pr, pp, inter, size_p, size_r = _contingency(predicted, reference)
    n_r, n_p = size_r.size, size_p.size
    iou = inter / (size_r[pr] + size_p[pp] - inter)
    ref_ids = np.flatnonzero(size_r[1:]) + 1
    pred_ids = np.flatnonzero(size_p[1:]) + 1
    best = np.zeros(n_r)
    np.maximum.at(best, pr, iou)
    big_part_r = inter >= part_min * size_r[pr]
    over = np.bincount(pr[big_part_r], minlength=n_r)
    under = np.bincount(pp[big_part_r], minlength=n_p)
    return MatchReport(
        n_reference=int(ref_ids.size), n_predicted=int(pred_ids.size),
        matched=int((best[ref_ids] >= iou_min).sum()), iou_of_reference=best[ref_ids],
        over_segmented=int((over[ref_ids] >= 2).sum()), under_segmented=int((under[pred_ids] >= 2).sum()),
        iou_min=iou_min,
    )
