"""Test helpers for writing NIfTI files that nibabel itself refuses to write."""

from pathlib import Path

import nibabel as nib
import numpy as np


def save_raw_affine(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    """Write a NIfTI-1 file whose sform is ``affine`` verbatim (nibabel refuses broken ones)."""
    h = nib.Nifti1Header()
    h.set_data_shape(data.shape)
    h.set_data_dtype(data.dtype)
    h["srow_x"], h["srow_y"], h["srow_z"] = affine[0], affine[1], affine[2]
    h["sform_code"], h["qform_code"] = 1, 0
    with open(path, "wb") as f:
        h.write_to(f)
        f.write(b"\0" * (int(h["vox_offset"]) - f.tell()))
        f.write(data.tobytes(order="F"))
    return path
