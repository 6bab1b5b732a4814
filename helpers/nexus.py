"""NeXus ``NXdata`` views of results, so that ``silx view`` and h5web show maps and volumes with axes.

The datasets stay where the workbook's readers look for them; an ``NXentry`` group (``/entry``, or a
given name) holds ``NXdata`` groups whose signal is a hard link to the existing dataset (no copy) and
whose axes are coordinate datasets with units. The file's ``default`` attribute points at the first
view, which viewers open directly.
"""

from __future__ import annotations

import numpy as np


def add_nxdata(h5, name: str, signal_path: str, axes: list[tuple[str, np.ndarray, str]],
               signal_units: str = "", title: str = "", entry: str = "entry") -> None:
    """Add ``/<entry>/<name>`` as an NXdata view of ``signal_path``.

    ``axes`` lists (name, coordinates, units), one per dimension of the signal, slowest first.
    """
    signal = h5[signal_path]
    if len(axes) != signal.ndim:
        raise ValueError(f"{signal_path}: {signal.ndim} dimensions but {len(axes)} axes given")
    group_entry = h5.require_group(entry)
    group_entry.attrs["NX_class"] = "NXentry"
    if "default" not in group_entry.attrs:
        group_entry.attrs["default"] = name
    if "default" not in h5.attrs:
        h5.attrs["default"] = entry
    if name in group_entry:
        del group_entry[name]
    data = group_entry.create_group(name)
    data.attrs["NX_class"] = "NXdata"
    short = signal_path.strip("/").split("/")[-1]
    data[short] = signal  # hard link: the same dataset under a second name
    data.attrs["signal"] = short
    data.attrs["axes"] = [a[0] for a in axes]
    for index, (axis, coords, units) in enumerate(axes):
        ds = data.create_dataset(axis, data=np.asarray(coords, dtype=np.float64))
        ds.attrs["units"] = units
        data.attrs[f"{axis}_indices"] = index
    if signal_units and "units" not in signal.attrs:
        signal.attrs["units"] = signal_units
    if title:
        data.attrs["title"] = title


def mark_volume(h5, path: str, voxel_size_m: float | None, first_row: int = 0) -> None:
    """NXdata view of a (z, y, x) volume at ``path``; axes in µm (voxel indices when the size is unknown)."""
    shape = h5[path].shape
    if voxel_size_m is None or not np.isfinite(voxel_size_m):
        step, units, offset = 1.0, "pixel", first_row
    else:
        step, units, offset = voxel_size_m * 1e6, "um", first_row
    axes = [
        ("z", (offset + np.arange(shape[0])) * step, units),
        ("y", np.arange(shape[1]) * step, units),
        ("x", np.arange(shape[2]) * step, units),
    ]
    add_nxdata(h5, path.strip("/").replace("/", "_"), path, axes, title=path)


def mark_maps(h5, group: str = "maps", signal: str = "strain", x: str = "x_um", y: str = "y_um",
              entry: str = "entry") -> None:
    """Make an existing group of 2-D maps an NXdata group (signal, the other 2-D maps as auxiliary
    signals, axes ``y``/``x``), linked as ``/<entry>/<group>`` and set as the file's default plot."""
    data = h5[group]
    shape = data[signal].shape
    aux = [name for name, item in data.items()
           if name != signal and getattr(item, "shape", None) == shape and item.dtype.kind in "fiub"]
    data.attrs["NX_class"] = "NXdata"
    data.attrs["signal"] = signal
    data.attrs["auxiliary_signals"] = aux
    data.attrs["axes"] = [y, x]
    data.attrs[f"{y}_indices"] = 0
    data.attrs[f"{x}_indices"] = 1
    group_entry = h5.require_group(entry)
    group_entry.attrs["NX_class"] = "NXentry"
    group_entry.attrs.setdefault("default", group)
    if group not in group_entry:
        group_entry[group] = data  # hard link to the same group
    h5.attrs.setdefault("default", entry)
