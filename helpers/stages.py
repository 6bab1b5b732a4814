"""Stage boundaries of the long commands, logged for benchmarks and users who want them.

``with stage("voids"): ...`` logs ``stage voids start`` and ``stage voids end <seconds> s`` at level INFO on
the logger ``helpers.stages`` (silent unless logging is configured, e.g.
``logging.basicConfig(level=logging.INFO)``); ``benchmarks/bench_analyse_scale.py`` splits its memory
samples by these lines.
"""

from __future__ import annotations

import contextlib
import logging
import time

log = logging.getLogger("helpers.stages")


@contextlib.contextmanager
def stage(name: str):
    """Log the start and the end (with its wall time in s) of the stage ``name``."""
    log.info("stage %s start", name)
    start = time.perf_counter()
    try:
        yield
    finally:
        log.info("stage %s end %.2f s", name, time.perf_counter() - start)
