"""Phase-contrast nano-CT (ESRF ID16B): files, phase retrieval, reconstruction, segmentation."""
