"""Comparison of a regenerated sample file with the committed one (shared by the data tests)."""

import numpy as np


def assert_same_data(actual, expected, err_msg=""):
    """Integers, strings and booleans exactly; floats to 1e-12 of the array's largest magnitude (the
    last bits of float sums differ between BLAS/CPU builds, so a regenerated float is not bit-exact)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.dtype.kind == "f" and expected.dtype.kind == "f":
        scale = float(np.nanmax(np.abs(expected))) if np.isfinite(expected).any() else 0.0
        np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-12 * scale, err_msg=err_msg)
    else:
        np.testing.assert_array_equal(actual, expected, err_msg=err_msg)
