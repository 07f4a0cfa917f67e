"""Run long native work (gmsh meshing) where Ctrl-C and SIGTERM can still stop the run.

Python delivers signals to the main thread between bytecodes, so a signal that arrives
while the main thread sits in a long C call (gmsh meshing a lead with hundreds of
contacts) waits until that call returns. :func:`run_interruptibly` runs such a call in
a worker thread and lets the main thread wait in short steps: the signal's exception
(``KeyboardInterrupt``, :class:`vta.errors.Terminated`) is raised at once, outputs are
rolled back, and the CLI exits without waiting for the worker (whose result is then
discarded).

gmsh's library installs C signal handlers of its own when it initialises (SIGTERM then
kills the process at once, with no cleanup); the waiting main thread puts Python's
handlers back every few milliseconds.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

__all__ = ["run_interruptibly"]

_SIGNALS = ("SIGINT", "SIGTERM")

#: Seconds between checks for a signal while the worker runs.
_POLL_S = 0.05


def run_interruptibly(fn: Callable[..., Any], *args: Any, name: str = "vta-worker", **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` in a worker thread named ``name``; the main thread stays
    responsive to signals. Called off the main thread, it simply calls ``fn``.

    Returns
    -------
    Any
        What ``fn`` returned; its exception is re-raised here.
    """
    if threading.current_thread() is not threading.main_thread():
        return fn(*args, **kwargs)
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the caller
            outcome["error"] = exc

    worker = threading.Thread(target=target, name=name, daemon=False)
    worker.start()
    while worker.is_alive():
        worker.join(_POLL_S)
        _reassert_signal_handlers()
    _reassert_signal_handlers()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _reassert_signal_handlers() -> None:
    """Re-install the Python handlers of SIGINT and SIGTERM at the C level (a library
    such as gmsh may have replaced them behind Python's back). Main thread only."""
    import signal

    for name in _SIGNALS:
        number = getattr(signal, name, None)
        if number is None:
            continue
        handler = signal.getsignal(number)
        if callable(handler) or handler in (signal.SIG_DFL, signal.SIG_IGN):
            try:
                signal.signal(number, handler)
            except (ValueError, OSError):  # not the main thread / not settable here
                pass
