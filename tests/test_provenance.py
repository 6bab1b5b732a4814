"""One provenance attribute, ``input_sha256``; files with the older ``input_checksum`` still read."""

import hashlib

import h5py

from helpers.provenance import file_sha256, stored_input_sha256
from helpers.sxdm import maps as M


def test_file_sha256_is_hashlib_sha256(tmp_path):
    path = tmp_path / "data.bin"
    payload = bytes(range(256)) * 50_000  # 12.8 MB: several 4 MiB blocks
    path.write_bytes(payload)
    assert file_sha256(path) == hashlib.sha256(payload).hexdigest()


def test_old_and_new_attribute_names_read_alike(tmp_path):
    digest = "ab" * 32
    assert stored_input_sha256({"input_sha256": digest}) == digest
    assert stored_input_sha256({"input_checksum": f"sha256:{digest}"}) == digest
    assert stored_input_sha256({"input_checksum": f"md5:{digest[:32]}"}) is None  # not a SHA-256
    assert stored_input_sha256({}) is None
    old = tmp_path / "old.h5"
    with h5py.File(old, "w") as f:
        f.attrs["input_checksum"] = f"sha256:{digest}"
    assert M.read_provenance(old)["input_sha256"] == digest
