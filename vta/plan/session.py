"""A planning session: one configuration being edited live, independent of any UI.

:class:`PlanSession` holds the configuration as a TOML-shaped mapping and the scene it
resolves to. Two kinds of edits:

- **setting edits** (amplitude and polarity per contact, mode, pulse width, threshold
  or fibre diameter) are answered at once by the scene's :class:`~vta.plan.live.LiveResponse`
  (tens of milliseconds, the numbers of ``vta run``); the tract activation (axon
  models, seconds) follows in the background once the edits pause (:attr:`confirmed`);
- **lead edits** (model, target preset, tip/entry, rotation, nudges) need a new field
  basis: :meth:`PlanSession.move_lead` validates the new configuration at once (a bad
  placement is an error there and then) and solves it on a worker thread; the session's
  :attr:`status` says ``"solving"`` until the new scene is live, and the old scene stays
  on display meanwhile. The latest move wins.

:meth:`PlanSession.save` writes the configuration (``plan.toml``, paths made absolute)
and the full ``vta run`` outputs of the current setting into a folder, all or nothing.

Units: mm, degrees, V or mA, us, V/mm, um.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..config import read_toml
from .toml_out import toml_text
from ..notices import collecting
from ..scene import Scene
from .live import LiveResponse, LiveResult

__all__ = ["PlanSession", "Confirmed", "PATH_KEYS", "CONFIRM_DELAY_S"]

log = logging.getLogger(__name__)

#: Quiet time (s) after a setting edit before its tract activation starts.
CONFIRM_DELAY_S = 0.6

#: Configuration keys that hold file paths (relative to the config file): made absolute
#: when a plan is saved elsewhere.
PATH_KEYS = {
    "anatomy": ("tissue_nifti", "tissue_labels", "labels_nifti", "label_table", "probabilistic_nifti", "t1_nifti",
                "dti_nifti"),
    "lead": ("leaddbs_reconstruction",),
}


@dataclass(frozen=True)
class Confirmed:
    """What the background work adds to a live setting: the tract activation results
    (:class:`vta.activation.tract_activation.TractResult`) and their warnings."""

    tracts: list
    warnings: list


def _absolute_paths(data: dict, base: Path) -> dict:
    """A copy of ``data`` with every relative file path made absolute against ``base``."""
    out = copy.deepcopy(data)
    for section, keys in PATH_KEYS.items():
        table = out.get(section)
        if not isinstance(table, dict):
            continue
        for key in keys:
            value = table.get(key)
            if isinstance(value, str) and value not in ("default", "default-aal3") and not Path(value).is_absolute():
                table[key] = str((base / value).resolve())
    tracts = out.get("tracts")
    if isinstance(tracts, dict) and isinstance(tracts.get("files"), list):
        files = []
        for item in tracts["files"]:
            if isinstance(item, str) and not Path(item).is_absolute():
                item = str((base / item).resolve())
            elif isinstance(item, dict) and isinstance(item.get("path"), str) and not Path(item["path"]).is_absolute():
                item = {**item, "path": str((base / item["path"]).resolve())}
            files.append(item)
        tracts["files"] = files
    return out


def _leave_a_core_free() -> None:
    """The axon models of this (worker) thread use all cores but one: the app's live
    answers keep a core while the tract activation runs (numba's thread count is
    per calling thread)."""
    try:
        import numba

        numba.set_num_threads(max(1, numba.config.NUMBA_NUM_THREADS - 1))
    except Exception:  # numba missing or its threading layer refuses: run as it is
        log.debug("could not limit the axon models' threads", exc_info=True)


def _rotate(v: np.ndarray, axis: np.ndarray, degrees: float) -> np.ndarray:
    """Rodrigues rotation of ``v`` about the unit ``axis``."""
    a = math.radians(degrees)
    k = axis / np.linalg.norm(axis)
    return v * math.cos(a) + np.cross(k, v) * math.sin(a) + k * np.dot(k, v) * (1 - math.cos(a))


class PlanSession:
    """A configuration edited live (see the module docstring).

    Parameters
    ----------
    data : dict
        The configuration mapping (as TOML gives it).
    source : str or Path
        Where it came from; relative paths in it are relative to this file's folder.
    on_change : callable, optional
        Called (from a worker thread) whenever :attr:`status`, the live scene or
        :attr:`confirmed` changes.

    Attributes
    ----------
    result : LiveResult or None
        The live answer of the current setting.
    confirmed : Confirmed or None
        The tract activation of the current setting (immediately, with no tracts
        configured); None while it is being computed.
    """

    def __init__(self, data: dict, source: str | Path = "<plan>", on_change: Callable[[], None] | None = None):
        self.source = str(source)
        self.base_dir = Path(source).resolve().parent if Path(str(source)).is_file() else Path.cwd()
        self.data = _absolute_paths(data, self.base_dir)
        self.on_change = on_change or (lambda: None)
        self.scene = Scene.from_dict(self.data, self.source)
        self.live: LiveResponse | None = None
        self.result: LiveResult | None = None
        self.confirmed: Confirmed | None = None
        self.status = "solving"
        self.message = "solving the field basis"
        self.error: str | None = None
        self.solve_seconds: float | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vta-plan")
        self._confirm_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vta-plan-confirm")
        self._generation = 0
        self._closed = False
        self._lock = threading.RLock()
        self._pending: Future | None = self._pool.submit(self._solve, self.scene, 0)

    @classmethod
    def from_toml(cls, path: str | Path, on_change: Callable[[], None] | None = None) -> "PlanSession":
        return cls(read_toml(path, "config file"), path, on_change)

    def snapshot(self) -> tuple:
        """``(live, result, confirmed, status, message)`` read together (the worker
        threads replace them under the session's lock)."""
        with self._lock:
            return self.live, self.result, self.confirmed, self.status, self.message

    # ------------------------------------------------------------------ lead
    def wait(self, timeout: float | None = None) -> None:
        """Block until the pending solve (if any) has finished (tests, scripts)."""
        pending = self._pending
        if pending is not None:
            pending.result(timeout)

    def _solve(self, scene: Scene, generation: int) -> None:
        t0 = time.perf_counter()
        try:
            live = LiveResponse(scene)
        except Exception as exc:  # shown in the app; the old scene stays live
            log.exception("solving the new lead position failed")
            with self._lock:
                if generation == self._generation:
                    self.status, self.error, self.message = "error", str(exc), f"solve failed: {exc}"
            self.on_change()
            return
        with self._lock:
            if generation != self._generation:
                return  # a later move superseded this one
            self.scene, self.live = scene, live
            self.solve_seconds = time.perf_counter() - t0
            self.status, self.error = "ready", None
            self.message = f"solved in {self.solve_seconds:.1f} s"
            self._evaluate_locked()
        self.on_change()
        self._confirm()

    def lead_table(self) -> dict:
        """The ``[lead]`` table being edited (a copy)."""
        return copy.deepcopy(self.data["lead"])

    def move_lead(self, **changes: Any) -> None:
        """Change the lead (``model``, ``target``, ``tip_mm``, ``entry_mm``, ``rotation_deg``)
        and re-solve in the background. Giving ``tip_mm``/``entry_mm`` drops a target
        preset (and vice versa). Raises :class:`VtaError` at once for a configuration
        that does not validate; the live scene is then unchanged."""
        lead = self.lead_table()
        if "target" in changes and changes["target"]:
            for key in ("tip_mm", "entry_mm", "direction", "leaddbs_reconstruction", "side", "space"):
                lead.pop(key, None)
        if "tip_mm" in changes or "entry_mm" in changes:
            current = self.scene.lead.placement
            lead.pop("target", None)
            lead.pop("align", None)
            lead.pop("direction", None)
            lead.setdefault("tip_mm", [float(v) for v in current.tip_mm])
            lead.setdefault("entry_mm", [float(v) for v in current.tip_mm + 40.0 * current.direction])
        lead.update({k: v for k, v in changes.items() if v is not None})
        data = {**copy.deepcopy(self.data), "lead": lead}
        self._restart(data)

    def nudge(self, shift_mm: tuple[float, float, float] = (0.0, 0.0, 0.0), depth_mm: float = 0.0,
              tilt_deg: tuple[float, float] = (0.0, 0.0), rotate_deg: float = 0.0) -> None:
        """Move the lead by small steps: shift tip and entry together (world mm), advance
        along the trajectory (``depth_mm`` > 0 deeper, towards the tip), tilt the
        trajectory about the tip (degrees about the world x axis, then y), and turn it
        about its axis."""
        placement = self.scene.lead.placement
        tip = np.asarray(placement.tip_mm, float)
        direction = np.asarray(placement.direction, float)
        length = 40.0
        entry = tip + length * direction
        shift = np.asarray(shift_mm, float) - depth_mm * direction
        tip, entry = tip + shift, entry + shift
        for axis, angle in zip(np.eye(3)[:2], tilt_deg):
            if angle:
                entry = tip + _rotate(entry - tip, axis, angle)
        self.move_lead(tip_mm=[round(float(v), 4) for v in tip], entry_mm=[round(float(v), 4) for v in entry],
                       rotation_deg=float(placement.rotation_deg + rotate_deg))

    def _restart(self, data: dict) -> None:
        scene = Scene.from_dict(data, self.source)  # validates now: errors reach the caller
        with self._lock:
            self.data = data
            self._generation += 1
            generation = self._generation
            self.status, self.message = "solving", "solving the new lead position"
        self.on_change()
        self._pending = self._pool.submit(self._solve, scene, generation)

    # ------------------------------------------------------------------ setting
    def set_setting(self, contacts: dict[int, float] | None = None, mode: str | None = None,
                    pulse_width_us: float | None = None, threshold_V_per_mm: float | None = None,
                    fiber_diameter_um: float | None = None) -> LiveResult | None:
        """Change the stimulation setting; returns the instant result (None while the
        first solve is still running: it is applied when that finishes).

        Values are validated like a configuration file's (a bad amplitude is a
        :class:`VtaError` and changes nothing)."""
        data = copy.deepcopy(self.data)
        stim, vta = data.setdefault("stimulation", {}), data.setdefault("vta", {})
        if contacts is not None:
            stim["contacts"] = {str(int(k)): float(v) for k, v in contacts.items() if v}
        if mode is not None:
            stim["mode"] = mode
        if pulse_width_us is not None:
            stim["pulse_width_us"] = float(pulse_width_us)
        if threshold_V_per_mm is not None:
            vta.pop("fiber_diameter_um", None)
            vta.pop("axon_diameter_um", None)
            vta["threshold_V_per_mm"] = float(threshold_V_per_mm)
        if fiber_diameter_um is not None:
            vta.pop("threshold_V_per_mm", None)
            vta.pop("axon_diameter_um", None)
            vta["fiber_diameter_um"] = float(fiber_diameter_um)
        with self._lock:
            scene = self.scene.with_config(data)  # validates; the basis is reused
            self.data, self.scene = data, scene
            if self.live is None:
                return None
            self.live.scene = scene
            result = self._evaluate_locked()
        self._confirm()
        return result

    def _evaluate_locked(self) -> LiveResult:
        scene = self.scene
        stim = scene.config.stimulation
        self.result = self.live.evaluate(scene.setting(), scene.threshold_V_per_mm, stim.pulse_width_us)
        self.confirmed = Confirmed([], []) if scene.config.tracts is None else None
        return self.result

    def _confirm(self) -> None:
        """The tract activation of the current setting, in the background, once the edits
        pause (nothing to do without tracts)."""
        with self._lock:
            if self.confirmed is not None:
                return
            scene, result = self.scene, self.result

        def run() -> None:
            from ..activation.tract_activation import tract_activation

            with self._lock:
                if self._closed or self.scene is not scene or self.result is not result:
                    return  # superseded by a later edit before it started
            _leave_a_core_free()
            try:
                with collecting() as messages:
                    tracts = tract_activation(scene.tract_setup(), scene.basis, result.state,
                                              scene.config.stimulation.pulse_width_us)
            except Exception:
                if not self._closed:
                    log.exception("the tract activation failed")
                return
            with self._lock:
                if self.scene is not scene or self.result is not result:
                    return
                self.confirmed = Confirmed(tracts, list(messages))
            self.on_change()

        # debounced: a burst of edits (a slider drag) runs the axon models once, for its
        # last setting, and the live answers of the burst do not compete with them
        def start() -> None:
            if not self._closed:
                with contextlib.suppress(RuntimeError):  # the pool was shut down meanwhile
                    self._confirm_pool.submit(run)

        timer = threading.Timer(CONFIRM_DELAY_S, start)
        timer.daemon = True
        timer.start()

    # ------------------------------------------------------------------ save
    def config_text(self) -> str:
        """The configuration being edited, as TOML."""
        return toml_text(self.data, header=f"vta plan, saved {time.strftime('%Y-%m-%d %H:%M:%S')}")

    def save(self, folder: str | Path, progress: bool = False) -> dict:
        """Write ``plan.toml`` and the full ``vta run`` outputs of the current setting
        into ``folder`` (all or nothing). Returns the summary."""
        from ..outputs import run
        from ..views.render import views_writer

        with self._lock:
            scene = self.scene
            text = self.config_text()

        def extra(sim, tx):
            names, seconds = views_writer(write_html=False)(sim, tx)
            tx.path("plan.toml").write_text(text, encoding="utf-8")
            return ["plan.toml", *names], seconds

        if self.status == "solving":
            self.wait()
        return run(scene, folder, progress=progress, extra=extra)

    def close(self) -> None:
        """Stop the worker threads (a running solve or simulation is abandoned)."""
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._confirm_pool.shutdown(wait=False, cancel_futures=True)
