"""Warnings that concern a result: shown on stderr and kept in ``summary.json``.

A number that may be wrong must say so where the user will see it, not only in a log.
Library code warns with ``logging`` as usual (``log.warning(...)`` on a logger under
``vta``); while a :func:`collecting` block is active, every such WARNING (or worse)
record is also kept, in order and without repeats, and ``vta run`` writes the list to
``summary.json`` as ``"warnings"``. Records logged with ``extra=NOT_ABOUT_RESULT``
(e.g. a cache that could not be written) are shown but not collected: they do not make
a number doubtful.

The CLI prints the records on stderr (``logging.basicConfig``); without any logging
configuration Python's last-resort handler prints them, as it would without this
module.
"""

from __future__ import annotations

import contextvars
import logging
from contextlib import contextmanager
from typing import Iterator

__all__ = ["NOT_ABOUT_RESULT", "collecting", "current"]

#: ``log.warning(msg, extra=NOT_ABOUT_RESULT)``: shown, but not a warning about the result.
NOT_ABOUT_RESULT = {"vta_not_about_result": True}

_active: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("vta_warnings", default=None)


class _Collector(logging.Handler):
    """Appends the messages of WARNING records to the active collection, if any."""

    def emit(self, record: logging.LogRecord) -> None:
        if not logging.getLogger().handlers and logging.lastResort is not None:
            # this handler would otherwise silence Python's last-resort stderr output
            if record.levelno >= logging.lastResort.level:
                logging.lastResort.handle(record)
        target = _active.get()
        if target is None or getattr(record, "vta_not_about_result", False):
            return
        try:
            message = record.getMessage()
        except Exception:  # a malformed record must not break the computation
            return
        if message not in target:
            target.append(message)


def _install() -> None:
    root = logging.getLogger("vta")
    if not any(isinstance(h, _Collector) for h in root.handlers):
        root.addHandler(_Collector(level=logging.WARNING))


_install()


@contextmanager
def collecting() -> Iterator[list[str]]:
    """Collect the warning messages logged under ``vta`` inside the block.

    Nested blocks share the outer block's list, so a CLI command that collects around
    loading the configuration and running it gets every warning once.

    Yields
    ------
    list of str
        The messages so far (appended to while the block runs).
    """
    outer = _active.get()
    if outer is not None:
        yield outer
        return
    messages: list[str] = []
    token = _active.set(messages)
    try:
        yield messages
    finally:
        _active.reset(token)


def current() -> list[str] | None:
    """The list being collected into, or None outside :func:`collecting`."""
    return _active.get()
