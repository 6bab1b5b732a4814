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


#: the attribute every results file stores its input file's SHA-256 (hex) under
INPUT_SHA256 = "input_sha256"
#: its older name in reconstructions (ct-reconstruct of version 0.1.0), value ``"sha256:<hex>"``; still read
OLD_INPUT_CHECKSUM = "input_checksum"


def stored_input_sha256(attrs) -> str | None:
    """The input's SHA-256 (hex) recorded in a results file's attributes (``h5py`` attrs or a dict).

    Reads ``input_sha256``, or the older ``input_checksum`` (``"sha256:<hex>"``); ``None`` if neither.
    """
    if INPUT_SHA256 in attrs:
        return str(attrs[INPUT_SHA256])
    if OLD_INPUT_CHECKSUM in attrs:
        algorithm, _, digest = str(attrs[OLD_INPUT_CHECKSUM]).partition(":")
        return digest if algorithm == "sha256" and digest else None
    return None
