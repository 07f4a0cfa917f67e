"""Result writing: nothing half-written, and an output folder holds exactly one run.

Single files are written to a temporary name in the destination folder and renamed
into place (:func:`atomic_write_bytes`, :func:`atomic_path`); they get the permissions
of any new file (``0666`` less the umask), not the ``0600`` of :func:`tempfile.mkstemp`.

:class:`OutputTransaction` publishes a whole run:

1. The outputs are written into a hidden staging folder inside the output folder.
2. Publishing first checks that every name is free for a file (no folder in the way),
   then writes a journal (``.vta-publish.json``), moves the previous versions of the
   outputs - and the files that the previous run of the same kind wrote and this run
   does not - into a hidden backup folder, moves the new files in (``summary.json``
   last) and records their names in ``.vta-outputs.json``. Removing the journal is the
   commit.
3. Any failure while publishing moves everything back: the folder holds the previous
   run, complete. A process killed at any step (``kill -9``, power loss) leaves the
   journal, and the next transaction on the folder rolls back the same way before it
   starts; staging and backup folders without a journal are removed then too.

Files that vta did not write (or that another kind of command wrote: ``vta run`` and
``vta sweep`` may share a folder) are never touched. One transaction at a time may
write to a folder: a second one fails with a clear message (``flock`` on the folder,
where the platform has it).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .errors import VtaError

__all__ = [
    "OutputTransaction",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "canonical_json",
    "nifti_bytes",
    "file_mode",
    "os_error",
    "to_jsonable",
    "write_table",
]

log = logging.getLogger(__name__)

#: Names of the bookkeeping files in an output folder.
MANIFEST = ".vta-outputs.json"
JOURNAL = ".vta-publish.json"
_STAGING_PREFIX = ".vta-staging-"
_BACKUP_PREFIX = ".vta-backup-"


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


def canonical_json(obj: Any) -> str:
    """The one canonical JSON text of plain data (numpy values converted, keys sorted,
    no spaces): equal data give equal text, for hashes and cache keys."""
    return json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)


def os_error(exc: OSError, path: str | os.PathLike | None = None, action: str = "cannot write") -> VtaError:
    """A one-line :class:`VtaError` for an OS error, naming the path (e.g. a full disk)."""
    where = path if path is not None else (exc.filename or "?")
    reason = exc.strerror or str(exc) or type(exc).__name__
    return VtaError(f"{action} {where}: {reason}")


def file_mode() -> int:
    """Permission bits of a new file under the current umask (``0666 & ~umask``)."""
    try:  # Linux >= 4.7 reports the umask without changing it (thread-safe)
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block
    succeeds, remove it when the block fails. For writers that want a file name
    (e.g. ``nibabel.save``). OS errors become one-line :class:`VtaError`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + "".join(path.suffixes), dir=path.parent)
        os.fchmod(fd, file_mode())
        os.close(fd)
    except OSError as exc:
        raise os_error(exc, path) from None
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise os_error(exc, path) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write bytes to ``path`` atomically (temp file in the same folder, then rename).

    Raises
    ------
    VtaError
        On any OS error (full disk, no permission, a folder in the way), naming ``path``.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise os_error(exc, path) from None
    return path


def nifti_bytes(data: np.ndarray, affine: np.ndarray, xform_code: int, compressed: bool = True) -> bytes:
    """A NIfTI-1 image (world mm, sform and qform ``xform_code``: 2 aligned, 4 MNI) as
    bytes, gzip-compressed without a timestamp (the same map gives the same bytes).

    Serialising in memory keeps file errors (a full disk) in one place, the atomic
    write, instead of in a gzip stream that nibabel closes later.
    """
    import gzip

    import nibabel as nib

    img = nib.Nifti1Image(data, affine)
    img.set_sform(affine, code=xform_code)
    img.set_qform(affine, code=xform_code)
    img.header.set_xyzt_units("mm")
    raw = img.to_bytes()
    return gzip.compress(raw, compresslevel=6, mtime=0) if compressed else raw


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically (NaN becomes null)."""
    text = json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n"
    return atomic_write_bytes(path, text.encode("utf-8"))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _is_file(path: Path) -> bool:
    """A regular file or a symbolic link (what a run may have written or may replace)."""
    return path.is_symlink() or path.is_file()


def previous_outputs(out_dir: Path, kind: str) -> list[str]:
    """Names that the last transaction of ``kind`` published in ``out_dir``.

    From ``.vta-outputs.json``; for folders written before it existed, a ``run``'s
    ``summary.json`` lists its outputs.
    """
    manifest = _read_json(out_dir / MANIFEST)
    if isinstance(manifest, dict):
        names = manifest.get(kind, [])
        return [n for n in names if isinstance(n, str) and _plain_name(n)]
    if kind == "run":
        summary = _read_json(out_dir / "summary.json")
        if isinstance(summary, dict) and "version" in summary and isinstance(summary.get("outputs"), list):
            return [n for n in summary["outputs"] if isinstance(n, str) and _plain_name(n)]
    return []


def _plain_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name


class _FolderLock:
    """An exclusive, non-blocking ``flock`` on a folder (a no-op where there is none)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # Windows
            return
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise VtaError(f"another vta process is writing to {self.folder}; wait for it or choose another --out") from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock
            self._fd = None


def recover(out_dir: Path) -> None:
    """Roll back a publication that a killed process left half done, and remove its
    staging and backup folders (see the module docstring). Call with the folder locked."""
    journal = _read_json(out_dir / JOURNAL)
    if isinstance(journal, dict):
        backup = out_dir / str(journal.get("backup", "-"))
        stage = out_dir / str(journal.get("stage", "-"))
        new = [n for n in journal.get("new", []) if isinstance(n, str) and _plain_name(n)]
        stale = [n for n in journal.get("stale", []) if isinstance(n, str) and _plain_name(n)]
        for name in new + stale:
            target, saved = out_dir / name, backup / name
            published = name in new and not _is_file(stage / name)
            if _is_file(saved):
                os.replace(saved, target)          # the previous version back
            elif published and _is_file(target):
                target.unlink()                    # written by the killed run; nothing was there before
        (out_dir / JOURNAL).unlink(missing_ok=True)
        log.warning("%s: rolled back a publication interrupted earlier; the folder holds the run before it",
                    out_dir)
    for leftover in list(out_dir.glob(_STAGING_PREFIX + "*")) + list(out_dir.glob(_BACKUP_PREFIX + "*")):
        shutil.rmtree(leftover, ignore_errors=True)
    for orphan in out_dir.glob(".*.tmp*"):  # temp files of atomic writes killed mid-way
        with contextlib.suppress(OSError):
            if orphan.is_file():
                orphan.unlink()


class OutputTransaction:
    """Stage a run's outputs; publish all of them (replacing the previous run) or none.

    Usage::

        with OutputTransaction(out_dir) as tx:
            nib.save(img, tx.path("vta.nii.gz"))
            tx.write_json("summary.json", summary)   # published last

    Parameters
    ----------
    out_dir : str or Path
        The output folder (created if missing; removed again if the run fails and
        the folder was created for it).
    kind : str
        What writes the folder (``"run"``, ``"sweep"``, ``"optimise"``): a new
        transaction removes what the previous one of the same kind wrote and it does
        not write, and nothing else.

    Raises
    ------
    VtaError
        An empty path, a path that is a file, a folder that cannot be created or
        written, a name taken by a folder, another process writing the same folder, or
        any OS error while publishing (the previous run is then left complete).
    """

    def __init__(self, out_dir: str | os.PathLike, kind: str = "run"):
        if not str(out_dir).strip():
            raise VtaError("the output folder is empty: give --out a folder name")
        self.out_dir = Path(out_dir)
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise VtaError(f"output path {self.out_dir} exists and is not a folder")
        if not _plain_name(kind):
            raise ValueError(f"bad transaction kind {kind!r}")
        self.kind = kind
        self._stage: Path | None = None
        self._last: list[str] = []
        self._created = False
        self._lock: _FolderLock | None = None

    def __enter__(self) -> "OutputTransaction":
        out = self.out_dir
        try:
            if not out.is_dir():
                out.mkdir(parents=True)
                self._created = True
            self._lock = _FolderLock(out)
            self._lock.acquire()
            recover(out)
            self._stage = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=out))
        except OSError as exc:
            self._abandon()
            raise os_error(exc, out, "cannot create output folder") from None
        except BaseException:
            self._abandon()
            raise
        return self

    def path(self, name: str) -> Path:
        """Staging path for an output file called ``name``."""
        assert self._stage is not None, "use inside a with-block"
        if not _plain_name(name) or name in (MANIFEST, JOURNAL):
            raise ValueError(f"bad output name {name!r}")
        return self._stage / name

    def write_json(self, name: str, obj: Any, last: bool = True) -> None:
        """Stage a JSON file; with ``last`` it is published after every other file."""
        atomic_write_json(self.path(name), obj)
        if last:
            self._last.append(name)

    def __exit__(self, exc_type, exc, tb) -> None:
        failed = exc_type is not None
        try:
            if not failed:
                self._publish()
        except BaseException:
            failed = True
            raise
        finally:
            if self._stage is not None:
                shutil.rmtree(self._stage, ignore_errors=True)
                self._stage = None
            if failed:
                self._abandon()
            elif self._lock is not None:
                self._lock.release()

    # ------------------------------------------------------------------ internals
    def _abandon(self) -> None:
        """After a failure: release the lock; remove the folder if this run created it
        and it is still empty."""
        if self._lock is not None:
            self._lock.release()
        if self._created:
            with contextlib.suppress(OSError):
                self.out_dir.rmdir()

    def _publish(self) -> None:
        out, stage = self.out_dir, self._stage
        assert stage is not None
        names = sorted(p.name for p in stage.iterdir())
        ordered = [n for n in names if n not in self._last] + [n for n in self._last if n in names]
        previous = previous_outputs(out, self.kind)
        stale = [n for n in previous if n not in names and _is_file(out / n)]
        for name in ordered:
            target = out / name
            if (target.exists() or target.is_symlink()) and not _is_file(target):
                raise VtaError(f"cannot write {target}: a folder of that name is in the way (nothing was changed)")
        manifest = _read_json(out / MANIFEST)
        manifest = dict(manifest) if isinstance(manifest, dict) else {}
        manifest[self.kind] = ordered
        atomic_write_json(stage / MANIFEST, manifest)
        backup = Path(tempfile.mkdtemp(prefix=_BACKUP_PREFIX, dir=out))
        moves = ordered[:-1] + [MANIFEST] + ordered[-1:] if ordered else [MANIFEST]
        journal = {"stage": stage.name, "backup": backup.name, "new": moves, "stale": stale}
        saved: list[str] = []
        published: list[str] = []
        try:
            atomic_write_json(out / JOURNAL, journal)
            for name in moves + stale:
                if _is_file(out / name):
                    os.replace(out / name, backup / name)
                    saved.append(name)
            for name in moves:
                os.replace(stage / name, out / name)
                published.append(name)
            (out / JOURNAL).unlink()   # the commit
        except BaseException as exc:
            self._roll_back(backup, saved, published)
            if isinstance(exc, OSError):
                raise os_error(exc, out, "cannot publish the outputs in") from None
            raise
        finally:
            shutil.rmtree(backup, ignore_errors=True)

    def _roll_back(self, backup: Path, saved: list[str], published: list[str]) -> None:
        out = self.out_dir
        for name in published:
            with contextlib.suppress(OSError):
                (out / name).unlink()
        for name in saved:
            with contextlib.suppress(OSError):
                os.replace(backup / name, out / name)
        with contextlib.suppress(OSError):
            (out / JOURNAL).unlink()


def write_table(rows: list[dict], path: str | Path) -> Path:
    """Write the rows as CSV (or Parquet for a ``.parquet`` path, needs pyarrow), atomically."""
    path = Path(path)
    if not rows:
        raise VtaError(f"no rows to write to {path}")
    columns = list(dict.fromkeys(k for r in rows for k in r))  # first-seen order, linear time
    if path.suffix.lower() == ".parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise VtaError("writing Parquet needs pyarrow (pip install pyarrow); write a .csv instead") from None
        table = pa.table({c: [r.get(c) for r in rows] for c in columns})
        buf = pa.BufferOutputStream()
        pq.write_table(table, buf)
        return atomic_write_bytes(path, buf.getvalue().to_pybytes())
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (repr(v) if isinstance(v, float) and math.isfinite(v) else
                             ("" if isinstance(v, float) else v)) for k, v in r.items()})
    return atomic_write_bytes(path, text.getvalue().encode("utf-8"))
