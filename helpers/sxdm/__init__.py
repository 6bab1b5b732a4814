"""Scanning X-ray diffraction microscopy (ESRF ID01): files, q-space, peaks, strain, tilt, curvature."""
