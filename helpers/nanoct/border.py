"""Particles cut by the volume's edge: which, and what to tell the user.

A particle whose bounding box reaches a face of the volume is only partly inside it: its volume,
equivalent diameter, sphericity and roundness are those of the cut part. The analysis keeps and
flags such particles (``touches_border``); :func:`border_message` says so in words.
"""

from __future__ import annotations

import numpy as np


def border_message(touches_border, labels=None, max_listed: int = 10) -> str | None:
    """A message naming the particles that touch the volume border, or ``None`` when none does.

    ``touches_border``: (n,) bool per particle (``Segmentation.touches_border`` or the table's
    column); ``labels``: their label numbers (default 1..n).
    """
    touches = np.asarray(touches_border, dtype=bool)
    labels = np.arange(1, touches.size + 1) if labels is None else np.asarray(labels)
    if labels.shape != touches.shape:
        raise ValueError(f"labels {labels.shape} and touches_border {touches.shape} differ in length")
    hit = labels[touches]
    if hit.size == 0:
        return None
    listed = ", ".join(str(int(v)) for v in hit[:max_listed]) + (" …" if hit.size > max_listed else "")
    return (
        f"{hit.size} of {touches.size} particles touch the volume border (labels {listed}): they are cut, "
        "so their volume, d_eq, sphericity and roundness describe only the part inside the volume. They "
        "are kept and flagged (touches_border = 1 in /particles); leave them out of size and shape "
        "statistics (table[~table.touches_border]), or reconstruct a larger field of view / crop the "
        "analysis to a region that holds them whole."
    )
