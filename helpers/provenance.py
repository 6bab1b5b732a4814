"""Provenance shared by every results writer: the checksum that ties an output to its input file."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_digest(path: str | Path, algorithm: str = "sha256", block_bytes: int = 1 << 22) -> str:
    """Hex digest of a file, read in 4 MiB blocks so that any file size fits in memory."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while block := handle.read(block_bytes):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """SHA-256 hex digest of a file (the ``input_sha256`` attribute of results files)."""
    return file_digest(path, "sha256")
