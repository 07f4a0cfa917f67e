"""Atomic result writing: nothing half-written is ever left behind.

Files are written to a temporary name in the destination folder and renamed into
place. :class:`OutputTransaction` stages a whole run's outputs in a hidden folder and
moves them into the output folder only when every file is complete, ``summary.json``
last, so a crashed or failed run leaves the output folder as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import VtaError

__all__ = ["OutputTransaction", "atomic_write_json", "atomic_write_bytes", "to_jsonable"]


def to_jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays and NaN inside nested containers to JSON data."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        value = float(obj)
        return value if np.isfinite(value) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write bytes to ``path`` atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically (NaN becomes null)."""
    text = json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n"
    return atomic_write_bytes(path, text.encode("utf-8"))


class OutputTransaction:
    """Stage outputs in a hidden sibling folder; publish all of them or none.

    Usage::

        with OutputTransaction(out_dir) as tx:
            nib.save(img, tx.path("vta.nii.gz"))
            tx.write_json("summary.json", summary)   # published last

    On an exception the staging folder is removed and ``out_dir`` is untouched.
    """

    def __init__(self, out_dir: str | Path):
        self.out_dir = Path(out_dir)
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise VtaError(f"output path {self.out_dir} exists and is not a folder")
        self._stage: Path | None = None
        self._last: list[str] = []

    def __enter__(self) -> "OutputTransaction":
        parent = self.out_dir.resolve().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self._stage = Path(tempfile.mkdtemp(prefix=f".{self.out_dir.name}.staging.", dir=parent))
        except OSError as exc:
            raise VtaError(f"cannot create output folder {self.out_dir}: {exc.strerror}") from None
        return self

    def path(self, name: str) -> Path:
        """Staging path for an output file called ``name``."""
        assert self._stage is not None, "use inside a with-block"
        return self._stage / name

    def write_json(self, name: str, obj: Any, last: bool = True) -> None:
        """Stage a JSON file; with ``last`` it is published after every other file."""
        atomic_write_json(self.path(name), obj)
        if last:
            self._last.append(name)

    def __exit__(self, exc_type, exc, tb) -> None:
        stage, self._stage = self._stage, None
        try:
            if exc_type is None:
                self.out_dir.mkdir(parents=True, exist_ok=True)
                names = sorted(p.name for p in stage.iterdir())
                ordered = [n for n in names if n not in self._last] + [n for n in self._last if n in names]
                for name in ordered:
                    os.replace(stage / name, self.out_dir / name)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
