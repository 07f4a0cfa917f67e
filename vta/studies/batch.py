"""Cohort batches on Dask: every subject-hemisphere of a manifest, resumable, plus group outputs.

:func:`run_batch` expands a manifest (:mod:`vta.studies.manifest`) into one configuration per
subject-hemisphere and runs :func:`vta.outputs.run` for each on a ``dask.distributed``
cluster: a :class:`distributed.LocalCluster` (one single-threaded worker process per
core) by default, or an existing scheduler by address.

Output folder::

    OUT/subjects/<subject>_<hemi>/   summary.json, vta.nii.gz, efield_norm.nii.gz (vta run)
    OUT/errors.csv                   subject, hemisphere, where, error (this run's failures)
    OUT/group.csv                    one row per manifest row: status, VTA, impedance, clipping, number
                                     of warnings, structures, tracts, then the manifest's subject
                                     variables (outcomes, covariates) verbatim, then error
    OUT/vta_frequency.nii.gz         per 1 mm MNI voxel: how many subjects' VTAs cover it
    OUT/vta_fraction.nii.gz          the same divided by the number of VTAs

Resuming: a subject is skipped when its ``summary.json`` exists and the configuration
recorded in it (``summary["config"]``) hashes to the same value as the subject's
configuration now (:func:`config_hash`), so an edited manifest or template re-runs
exactly the subjects it changes. Every subject's outputs are written atomically by
``vta run`` (all files or none, ``summary.json`` last); a subject counts as finished only
when every file its summary lists is there. Killing a worker or the whole batch loses
nothing finished, and the group files are rebuilt from what is on disk at the end of
every run (also after an interruption), so a resumed batch produces complete group files.
Each group file is written atomically (a temporary file in the same folder, renamed);
an OS error while writing one is a one-line :class:`~vta.errors.VtaError` naming it.

Ctrl-C (``KeyboardInterrupt``): the running subjects are cancelled, the cluster is shut
down, the group files are written from the finished subjects (a second Ctrl-C meanwhile
waits until they are whole), and :class:`BatchInterrupted` is raised, saying how many
finished subjects were kept. LocalCluster workers ignore SIGINT, so a Ctrl-C in a
terminal (sent to the whole process group) is handled by the batch alone; while the
LocalCluster starts (a second or so), Ctrl-C is ignored.

Lead-DBS export: with ``[output] leaddbs`` in the template, every subject's ``vta run``
also writes its Lead-DBS stimulation folder (``true``: into the row's
``leaddbs_folder``; a folder path: into ``<path>/sub-<subject>/``; see
:mod:`vta.studies.manifest` and :mod:`vta.leaddbs_export`). Those files are part of the
subject's result: a subject whose summary lists Lead-DBS files that are gone is run
again, and a subject's export is renamed into place only together with its outputs.
Other stimulations in the patient folders are never touched.

A failing subject (malformed manifest row, bad configuration, solver error, a worker
that keeps dying) is recorded in ``errors.csv`` and in ``group.csv`` with its one-line
error; the others go on.

With an existing scheduler (``scheduler="tcp://host:port"``) the workers need ``vta``
installed and the same paths as the client: the template and the files it names, the
Lead-DBS folders and the output folder (a shared file system on a cluster). Each task
runs one subject in one worker thread; give workers one thread each (``--nthreads 1``).

Code that starts a ``LocalCluster`` (``processes=True``) must be run under an
``if __name__ == "__main__":`` guard (the ``vta`` command is).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import Terminated, VtaError
from ..io import atomic_write_bytes, canonical_json, nifti_bytes
from .manifest import Manifest, SubjectSpec, load_manifest

__all__ = ["BatchInterrupted", "BatchResult", "SubjectResult", "config_hash", "frequency_map", "run_batch",
           "write_group_outputs"]

log = logging.getLogger(__name__)

SUBJECTS_DIR = "subjects"
ERRORS_CSV = "errors.csv"
GROUP_CSV = "group.csv"
FREQUENCY_NIFTI = "vta_frequency.nii.gz"
FRACTION_NIFTI = "vta_fraction.nii.gz"
CONNECT_TIMEOUT_S = 30.0  # s, to reach an existing scheduler


@dataclass(frozen=True)
class SubjectResult:
    """What happened to one subject-hemisphere in this run.

    ``status`` is ``"done"`` (computed now), ``"skipped"`` (already on disk with the
    same configuration) or ``"failed"`` (``error`` holds the one-line reason).
    """

    subject: str
    hemisphere: str
    status: str
    error: str | None = None
    vta_volume_mm3: float | None = None
    seconds: float | None = None


@dataclass
class BatchResult:
    """The outcome of :func:`run_batch`: per-subject results and the group files written."""

    out_dir: Path
    results: list[SubjectResult]
    group_csv: Path | None = None
    frequency_nifti: Path | None = None
    fraction_nifti: Path | None = None
    wall_s: float = 0.0

    def count(self, status: str) -> int:
        """Number of subjects with ``status`` (``"done"``, ``"skipped"``, ``"failed"``)."""
        return sum(r.status == status for r in self.results)

    @property
    def failed(self) -> list[SubjectResult]:
        """The failed subjects."""
        return [r for r in self.results if r.status == "failed"]

    @property
    def ok(self) -> bool:
        """True when no subject failed."""
        return not self.failed

    def summary_line(self) -> str:
        """One line: totals, where errors are, wall time."""
        n = len(self.results)
        line = (f"{n} subject-hemispheres: {self.count('done')} done, {self.count('skipped')} skipped, "
                f"{self.count('failed')} failed")
        if self.failed:
            line += f" (see {self.out_dir / ERRORS_CSV})"
        return line + f"; {self.wall_s:.1f} s"


class BatchInterrupted(KeyboardInterrupt):
    """A batch stopped by Ctrl-C (or another ``KeyboardInterrupt``, e.g. SIGTERM turned
    into one), after keeping what was finished.

    Attributes
    ----------
    n_finished : int
        Subject-hemispheres of the manifest whose complete outputs for their current
        configuration are in ``out_dir/subjects`` (finished in this run or before).
    out_dir : Path
        The batch output folder.
    word : str
        ``"interrupted"``, or ``"terminated"`` when the interrupt was a SIGTERM.
    """

    def __init__(self, n_finished: int, out_dir: str | Path, word: str = "interrupted") -> None:
        self.n_finished = int(n_finished)
        self.out_dir = Path(out_dir)
        self.word = word
        super().__init__(self.message())

    def message(self) -> str:
        """One line for the user, e.g. ``vta: interrupted; 3 finished subjects kept in
        OUT/subjects, the rest can be resumed by running the same command again``."""
        n = self.n_finished
        return (f"vta: {self.word}; {n} finished subject{'' if n == 1 else 's'} kept in "
                f"{self.out_dir / SUBJECTS_DIR}, the rest can be resumed by running the same command again")


# ----------------------------------------------------------------------------- hashing


#: ``[output]`` keys of the Lead-DBS export, left out of the hash while there is no
#: export, so that summaries written before these keys existed still match.
_LEADDBS_KEYS = ("leaddbs", "leaddbs_label", "leaddbs_model", "leaddbs_legacy")


def _canonical_config(resolved: dict) -> str:
    """Canonical JSON of a resolved configuration as it is stored in summary.json."""
    output = resolved.get("output") if isinstance(resolved, dict) else None
    if isinstance(output, dict) and output.get("leaddbs") is None:
        resolved = {**resolved, "output": {k: v for k, v in output.items() if k not in _LEADDBS_KEYS}}
    return canonical_json(resolved)


def config_hash(config_or_resolved: Any) -> str:
    """SHA-256 of a resolved configuration (a :class:`vta.scene.Scene` or its ``resolved()`` dict).

    The same value is obtained from the ``config`` entry of the ``summary.json`` that a
    run of that configuration wrote, which is how finished subjects are recognised.
    """
    resolved = config_or_resolved if isinstance(config_or_resolved, dict) else config_or_resolved.resolved()
    return hashlib.sha256(_canonical_config(resolved).encode("utf-8")).hexdigest()


def _stored_hash(subject_dir: Path) -> str | None:
    """The configuration hash of a finished run in ``subject_dir``, or None (no run, or
    one whose outputs are incomplete: see :func:`_missing_outputs`)."""
    path = subject_dir / "summary.json"
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
        if _missing_outputs(subject_dir, summary):
            return None
        return config_hash(summary["config"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _missing_outputs(subject_dir: Path, summary: dict) -> list[str]:
    """Files that the summary lists but ``subject_dir`` lacks; ``["(publication under
    way)"]`` while a ``vta run`` publication journal is there (a run killed mid-publish)."""
    from .. import io as vio

    journal = getattr(vio, "JOURNAL", None)
    if journal and (subject_dir / journal).exists():
        return ["(publication under way)"]
    names = summary.get("outputs") or []
    missing = [n for n in names if isinstance(n, str) and "/" not in n and not (subject_dir / n).is_file()]
    export = summary.get("leaddbs_export")  # the subject's Lead-DBS files, in the patient folder
    if isinstance(export, dict) and isinstance(export.get("folder"), str):
        missing += [str(Path(export["folder"]) / n) for n in export.get("files") or []
                    if isinstance(n, str) and not (Path(export["folder"]) / n).is_file()]
    return missing


# ----------------------------------------------------------------------------- the task


def _run_subject(data: dict, source: str, out_dir: str, expected_hash: str) -> dict:
    """Run one subject on a worker; never raises for a subject's own failure."""
    t0 = time.perf_counter()
    try:
        from ..outputs import run
        from ..scene import Scene

        scene = Scene.from_dict(data, source)
        if config_hash(scene) != expected_hash:
            log.warning("%s: the configuration resolves differently on this worker (different files?)", out_dir)
        summary = run(scene, out_dir, progress=False)
        return {"status": "done", "vta_volume_mm3": summary["vta_volume_mm3"], "seconds": time.perf_counter() - t0}
    except Exception as exc:  # one subject's failure is data for errors.csv, not a batch failure
        log.debug("subject in %s failed", out_dir, exc_info=True)
        return {"status": "failed", "error": _one_line(exc), "seconds": time.perf_counter() - t0}


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, VtaError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ----------------------------------------------------------------------------- the batch


def run_batch(
    manifest: Manifest | str | Path,
    out_dir: str | Path,
    *,
    template: str | Path | None = None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    processes: bool = True,
    progress: bool = False,
    frequency_spacing_mm: float = 1.0,
    worker_timeout_s: float = 120.0,
) -> BatchResult:
    """Run every subject-hemisphere of a manifest on Dask; skip finished ones.

    Parameters
    ----------
    manifest : Manifest, str or Path
        A parsed manifest or a CSV/TOML manifest file.
    out_dir : str or Path
        Output folder (created).
    template : str or Path, optional
        Template TOML (when ``manifest`` is a path; see :func:`vta.studies.manifest.load_manifest`).
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:port``); default: start a
        ``LocalCluster`` for this batch.
    n_workers : int, optional
        LocalCluster workers (default: one per core, at most the number of subjects
        to run). Ignored with ``scheduler``.
    processes : bool
        LocalCluster workers as processes (default) or threads in this process (one
        thread at most is safe: the mesher is not thread-safe).
    progress : bool
        A progress bar on a terminal (completions are logged at INFO either way).
    frequency_spacing_mm : float
        Voxel size of the group frequency map (mm, default 1).
    worker_timeout_s : float
        With ``scheduler``: how long to wait for at least one worker (s).

    Returns
    -------
    BatchResult

    Raises
    ------
    VtaError
        A malformed manifest or template, or an unreachable scheduler. Failures of
        single subjects are not raised; they are in the result and ``errors.csv``.
    """
    t0 = time.perf_counter()
    if not isinstance(manifest, Manifest):
        manifest = load_manifest(manifest, template)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise VtaError(f"output path {out} exists and is not a folder")
    try:
        (out / SUBJECTS_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VtaError(f"cannot create output folder {out}: {exc.strerror}") from None

    results: dict[str, SubjectResult] = {}  # by SubjectSpec.key
    hashes: dict[str, str] = {}
    pending: list[tuple[SubjectSpec, dict, str]] = []
    prepared = False
    interrupt: KeyboardInterrupt | None = None
    files: tuple = (None, None, None)
    try:
        for spec in manifest.subjects:
            try:
                config = spec.scene()  # a malformed manifest row raises its error here
                data = spec.config_data()
                h = config_hash(config)
            except Exception as exc:  # noqa: BLE001 - recorded per subject
                results[spec.key] = SubjectResult(spec.subject, spec.hemisphere, "failed", _one_line(exc))
                log.warning("%s", results[spec.key].error)
                continue
            hashes[spec.key] = h
            if _stored_hash(out / SUBJECTS_DIR / spec.name) == h:
                results[spec.key] = SubjectResult(spec.subject, spec.hemisphere, "skipped")
            else:
                pending.append((spec, data, h))
        prepared = True
        log.info("%d subject-hemispheres: %d to run, %d already done, %d invalid", len(manifest.subjects),
                 len(pending), sum(r.status == "skipped" for r in results.values()),
                 sum(r.status == "failed" for r in results.values()))
        _write_errors(out, manifest, results)
        if pending:
            _run_pending(pending, out, results, manifest, scheduler, n_workers, processes, progress, worker_timeout_s)
    except KeyboardInterrupt as exc:
        interrupt = exc
        log.warning("interrupted; writing the group files from the finished subjects")
    finally:  # also after an interruption or an error: the group files show what is finished
        if prepared:  # (before that, the previous group files are better than a partial picture)
            try:
                with _sigint_deferred("writing the group files"):
                    _write_errors(out, manifest, results)
                    files = write_group_outputs(manifest, out, hashes, results, spacing_mm=frequency_spacing_mm)
            except KeyboardInterrupt as exc:  # each file is then the old or the new one, never partial
                interrupt = interrupt or exc
    if interrupt is not None:
        word = "terminated" if isinstance(interrupt, Terminated) else "interrupted"
        exc = BatchInterrupted(_count_finished(manifest, out, hashes), out, word)
        log.info("%s", exc.message())
        raise exc from None
    result = BatchResult(out, [results[s.key] for s in manifest.subjects], *files, wall_s=time.perf_counter() - t0)
    log.info("%s", result.summary_line())
    return result


def _count_finished(manifest: Manifest, out: Path, hashes: dict[str, str]) -> int:
    """Subjects whose complete outputs for their current configuration are on disk."""
    return sum(spec.key in hashes and _stored_hash(out / SUBJECTS_DIR / spec.name) == hashes[spec.key]
               for spec in manifest.subjects)


@contextlib.contextmanager
def _sigint_deferred(doing: str):
    """Hold a Ctrl-C back until the block is done, then raise ``KeyboardInterrupt``; a
    second Ctrl-C raises at once. Only in the main thread, with Python's default handler."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    received: list[int] = []

    def handler(signum, frame):
        if received:
            raise KeyboardInterrupt
        received.append(signum)
        log.warning("interrupted; %s first (Ctrl-C again to stop at once)", doing)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


@contextlib.contextmanager
def _sigint_ignored():
    """Ignore Ctrl-C while a LocalCluster starts (a second or so): its worker processes
    inherit the ignored SIGINT, and an interrupted start would leave Dask's tracebacks."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)


def _sigint_ignoring_plugin():
    """A Dask worker plugin that makes worker processes ignore SIGINT (also restarted ones).

    For this batch's own LocalCluster only: a Ctrl-C in a terminal reaches the whole
    process group, and the batch (which cancels, shuts the cluster down and writes the
    group files) should handle it, not each worker with a traceback.
    """
    from distributed.diagnostics.plugin import WorkerPlugin

    class IgnoreSigint(WorkerPlugin):
        name = "vta-ignore-sigint"

        def setup(self, worker) -> None:
            import signal
            import threading

            if threading.current_thread() is threading.main_thread():  # a worker process's event loop
                signal.signal(signal.SIGINT, signal.SIG_IGN)

    return IgnoreSigint()


def connect_scheduler(address: str, worker_timeout_s: float, connect_timeout_s: float | None = None):
    """A ``distributed.Client`` of an existing scheduler that has at least one worker.

    Parameters
    ----------
    address : str
        ``tcp://host:port``.
    worker_timeout_s : float
        How long to wait for the first worker (s).
    connect_timeout_s : float, optional
        How long to try to reach the scheduler (s); default :data:`CONNECT_TIMEOUT_S`.

    Raises
    ------
    VtaError
        Unreachable scheduler, or no worker within ``worker_timeout_s`` (one line each).
    """
    from dask.distributed import Client

    timeout = CONNECT_TIMEOUT_S if connect_timeout_s is None else connect_timeout_s
    try:
        client = Client(address, timeout=f"{timeout}s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise VtaError(f"cannot connect to the Dask scheduler at {address}: {_one_line(exc)}") from None
    try:
        client.wait_for_workers(1, timeout=worker_timeout_s)
    except (TimeoutError, OSError):
        client.close()
        raise VtaError(f"the Dask scheduler at {address} has no workers (waited {worker_timeout_s:.0f} s)") from None
    return client


def _run_pending(pending, out: Path, results: dict, manifest: Manifest, scheduler: str | None,
                 n_workers: int | None, processes: bool, progress: bool, worker_timeout_s: float) -> None:
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise VtaError("cohort batches need Dask: pip install 'vta[batch]'") from None
    from tqdm.auto import tqdm

    cluster = client = None
    futures: dict = {}
    try:
        if scheduler is None:
            n = n_workers or min(len(pending), os.cpu_count() or 1)
            if n < 1:
                raise VtaError(f"--workers must be >= 1, got {n}")
            log.info("starting a LocalCluster with %d worker%s", n, "s" * (n > 1))
            where = {"host": "127.0.0.1"} if processes else {}  # threads talk in-process
            with _sigint_ignored() if processes else contextlib.nullcontext():
                cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=processes,
                                       dashboard_address=None, silence_logs=logging.ERROR, **where)
                client = Client(cluster)
                if processes:
                    client.register_plugin(_sigint_ignoring_plugin())
        else:
            client = connect_scheduler(scheduler, worker_timeout_s)
        for spec, data, h in pending:
            _remove_stale_staging(out / SUBJECTS_DIR, spec.name)
            fut = client.submit(_run_subject, data, spec.source, str(out / SUBJECTS_DIR / spec.name), h,
                                key=f"vta-subject-{spec.name}-{h[:12]}", pure=False)
            futures[fut] = spec
        bar = tqdm(total=len(futures), desc="vta batch", unit="subject", disable=None if progress else True)
        try:
            for i, fut in enumerate(as_completed(futures), start=1):
                spec = futures[fut]
                try:
                    r = fut.result()
                except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker: the worker died every time
                    r = {"status": "failed", "error": f"the task was lost: {_one_line(exc)}"}
                res = SubjectResult(spec.subject, spec.hemisphere, r["status"], r.get("error"),
                                    r.get("vta_volume_mm3"), r.get("seconds"))
                results[spec.key] = res
                bar.update(1)
                if res.status == "failed":
                    log.warning("%s %s failed: %s", spec.subject, spec.hemisphere, res.error)
                    _write_errors(out, manifest, results)
                else:
                    log.info("%s %s done in %.1f s (%d/%d)", spec.subject, spec.hemisphere, res.seconds or 0.0,
                             i, len(futures))
        finally:
            bar.close()
    finally:  # a Ctrl-C meanwhile waits: workers left running would go on writing
        with _sigint_deferred("stopping the Dask workers"):
            for fut in futures:
                if not fut.done():
                    fut.cancel()
            if client is not None:
                client.close()
            if cluster is not None:
                cluster.close()


def _remove_stale_staging(subjects_dir: Path, name: str) -> None:
    """Remove staging folders left by a killed run of this subject (vta.io.OutputTransaction)."""
    import shutil

    for stale in subjects_dir.glob(f".{name}.staging.*"):
        shutil.rmtree(stale, ignore_errors=True)


# ----------------------------------------------------------------------------- group outputs


def _write_errors(out: Path, manifest: Manifest, results: dict[str, SubjectResult]) -> Path:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["subject", "hemisphere", "where", "error"])
    for spec in manifest.subjects:
        r = results.get(spec.key)
        if r is not None and r.status == "failed":
            w.writerow([spec.subject, spec.hemisphere, spec.where, r.error])
    return _write_file(out / ERRORS_CSV, buf.getvalue().encode("utf-8"))


def _write_file(path: Path, data: bytes) -> Path:
    """Write ``path`` atomically (a temporary file beside it, renamed onto it).

    Raises
    ------
    VtaError
        For any OS error (full disk, no permission, a folder in the way), naming ``path``.
    """
    try:
        return atomic_write_bytes(path, data)
    except OSError as exc:
        raise VtaError(f"cannot write {path}: {exc.strerror or _one_line(exc)}") from None


def write_group_outputs(manifest: Manifest, out_dir: str | Path, hashes: dict[str, str],
                        results: dict[str, SubjectResult] | None = None,
                        spacing_mm: float = 1.0) -> tuple[Path, Path | None, Path | None]:
    """Write ``group.csv`` and the VTA frequency/fraction maps from what is on disk.

    Parameters
    ----------
    manifest : Manifest
    out_dir : str or Path
        The batch output folder (subjects under ``subjects/``).
    hashes : dict
        Subject folder name -> expected configuration hash; a summary counts only when
        its stored configuration matches (otherwise the row's status is ``"stale"``).
    results : dict, optional
        This run's results by :attr:`SubjectSpec.key` (for the errors of failed subjects).
    spacing_mm : float
        Frequency map voxel size (mm).

    Returns
    -------
    (group_csv, frequency_nifti or None, fraction_nifti or None)
        The maps are written when at least one finished subject has a ``vta.nii.gz``.

    Raises
    ------
    VtaError
        When a group file cannot be written (naming it). Each file is written
        atomically: it is the previous version or the new one, never partial.
    """
    out = Path(out_dir)
    results = results or {}
    rows, structures, tracts, images = [], set(), set(), []
    for spec in manifest.subjects:
        folder = out / SUBJECTS_DIR / spec.name
        row: dict[str, Any] = {"subject": spec.subject, "hemisphere": spec.hemisphere}
        summary = None
        if spec.error is not None:  # a malformed manifest row
            row["status"], row["error"] = "failed", spec.error
        elif spec.key in hashes and _stored_hash(folder) == hashes[spec.key]:
            summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
            row["status"] = "ok"
        elif spec.key in results and results[spec.key].status == "failed":
            row["status"], row["error"] = "failed", results[spec.key].error
        elif (folder / "summary.json").exists():
            row["status"], row["error"] = "stale", _stale_reason(folder)
        else:
            row["status"] = "missing"
        if summary is not None:
            cfg = summary["config"]
            row.update({
                "lead_model": cfg["lead"]["model"],
                "tip_x_mm": cfg["lead"]["tip_mm"][0], "tip_y_mm": cfg["lead"]["tip_mm"][1],
                "tip_z_mm": cfg["lead"]["tip_mm"][2],
                "mode": cfg["stimulation"]["mode"],
                "contacts": ";".join(f"{k}:{v:g}" for k, v in cfg["stimulation"]["contacts"].items()),
                "pulse_width_us": cfg["stimulation"]["pulse_width_us"],
                "threshold_V_per_mm": summary["threshold_V_per_mm"],
                "vta_volume_mm3": summary["vta_volume_mm3"],
                "vta_grid_volume_mm3": summary.get("vta_grid_volume_mm3"),
                "impedance_ohm": summary["impedance_ohm"],
                "vta_clipped_by_domain": bool(summary.get("vta_clipped_by_domain") or False),
                "warnings": len(summary.get("warnings") or []),
            })
            for name, cov in summary.get("structures", {}).items():
                structures.add(name)
                row[f"{name}_overlap_mm3"] = cov["overlap_mm3"]
                row[f"{name}_fraction"] = cov["fraction"]
            for name, tr in (summary.get("tracts") or {}).items():
                tracts.add(name)
                row[f"tract_{name}_activated"] = tr["n_activated"]
                row[f"tract_{name}_fraction"] = tr["fraction_activated"]
            if (folder / "vta.nii.gz").is_file():
                images.append(folder / "vta.nii.gz")
        rows.append(row)
    columns = ["subject", "hemisphere", "status", "lead_model", "tip_x_mm", "tip_y_mm", "tip_z_mm", "mode",
               "contacts", "pulse_width_us", "threshold_V_per_mm", "vta_volume_mm3", "vta_grid_volume_mm3",
               "impedance_ohm", "vta_clipped_by_domain", "warnings"]
    for name in sorted(structures):
        columns += [f"{name}_overlap_mm3", f"{name}_fraction"]
    for name in sorted(tracts):
        columns += [f"tract_{name}_activated", f"tract_{name}_fraction"]
    variables = list(getattr(manifest, "variables", ()))
    clash = [v for v in variables if v in columns]
    if clash:  # a structure or tract column named like a subject variable: the variable wins
        log.warning("group.csv: subject variable%s %s take%s the place of the computed column%s of that name",
                    "s" * (len(clash) > 1), ", ".join(clash), "" if len(clash) > 1 else "s", "s" * (len(clash) > 1))
        columns = [c for c in columns if c not in clash]
    columns += variables  # outcomes and covariates of the manifest, verbatim (for vta group)
    for spec, row in zip(manifest.subjects, rows):
        for name in variables:
            row[name] = spec.variables.get(name, "")
    columns.append("error")
    buf = io.StringIO()
    w = csv.DictWriter(buf, columns, lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: _cell(row.get(k)) for k in columns})
    group = _write_file(out / GROUP_CSV, buf.getvalue().encode("utf-8"))
    if not images:
        log.info("no subject VTA images; no frequency map")
        return group, None, None
    count, affine = frequency_map(images, spacing_mm)
    freq = _save_nifti_atomic(count, affine, out / FREQUENCY_NIFTI)
    frac = _save_nifti_atomic((count / len(images)).astype(np.float32), affine, out / FRACTION_NIFTI)
    return group, freq, frac


def _stale_reason(folder: Path) -> str:
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        missing = _missing_outputs(folder, summary)
    except (OSError, ValueError, AttributeError):
        return "summary.json cannot be read"
    if missing:
        return f"incomplete outputs (missing {', '.join(missing)})"
    return "summary.json is from a different configuration"


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def frequency_map(images: Sequence[str | Path], spacing_mm: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Count, per voxel of a common grid, how many VTA masks cover it.

    The grid has ``spacing_mm`` voxels with centres on multiples of ``spacing_mm`` in
    world (MNI) mm, axes along +x, +y, +z (RAS), and is the bounding box of every
    covered voxel. Each mask is sampled by nearest neighbour: a grid voxel counts for a
    subject when the subject's voxel nearest to its centre (in world coordinates) is in
    the VTA. The grid logic is shared with ``vta group``
    (:func:`vta.cohort.voxels.frequency_count`); each mask is read once.

    Parameters
    ----------
    images : sequence of paths
        VTA masks (NIfTI, non-zero = inside), each with its own affine (mm).
    spacing_mm : float
        Voxel size of the common grid (mm).

    Returns
    -------
    count : ndarray of uint16, shape (nx, ny, nz)
    affine : ndarray (4, 4)
        Voxel index -> world mm.
    """
    from ..cohort.voxels import frequency_count

    if not spacing_mm > 0:
        raise VtaError(f"frequency map spacing must be positive, got {spacing_mm}")
    return frequency_count(images, spacing_mm)


def _save_nifti_atomic(data: np.ndarray, affine: np.ndarray, path: Path) -> Path:
    return _write_file(path, nifti_bytes(data, affine, 4, compressed=path.name.endswith(".gz")))  # 4: MNI152
