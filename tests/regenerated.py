"""Compare a regenerated data sample with the committed one, on any machine.

Integers, booleans and strings must be equal. Floats may differ in their last bits between numpy/BLAS
builds: a reordered sum of n terms differs by ~n·eps·Σ|terms|, and the truth's geometry (inverse
trigonometry, centroids, spreads of values ~10³ times larger than the spread) amplifies that; measured
between two machines: up to 56 eps relative (peak row on the detector) and 0.2 eps of the operands
for a spread. A real change of the generator (seed, design, model) moves values by the noise or the
design, ≥ 1e-6 relative. Floats are therefore compared to sqrt(eps) of their own dtype (1.5e-8 for
float64, 3.5e-4 for float32), relative to each value and to the largest magnitude in the array (an
exact zero may come out as ±1e-16): far above rounding, far below any real change.
"""

import numpy as np


def assert_regenerated_equal(new, committed, where: str) -> None:
    """Assert ``new`` equals ``committed``: exact for non-floats, to sqrt(eps) of the dtype for floats."""
    a, b = np.asarray(new), np.asarray(committed)
    assert a.shape == b.shape, f"{where}: shape {a.shape} != {b.shape}"
    assert a.dtype == b.dtype, f"{where}: dtype {a.dtype} != {b.dtype}"
    if np.issubdtype(b.dtype, np.inexact):
        tol = float(np.sqrt(np.finfo(b.dtype).eps))
        finite = np.abs(b[np.isfinite(b)])
        scale = float(finite.max()) if finite.size else 0.0
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * scale, equal_nan=True, err_msg=where)
    else:
        np.testing.assert_array_equal(a, b, err_msg=where)
