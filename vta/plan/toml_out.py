"""Write a configuration mapping back as TOML (the subset vta's configurations use).

Tables of scalars, strings, booleans, lists and inline tables (``contacts = { 0 = -3.0 }``),
nested tables as ``[a.b]`` sections. Enough for :class:`vta.plan.session.PlanSession`
to save what it edits; the result reads back with :mod:`tomllib` to the same mapping.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["toml_text"]


def _key(k: Any) -> str:
    k = str(k)
    return k if k.replace("_", "").replace("-", "").isalnum() else json.dumps(k)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            raise ValueError(f"cannot write {v} to TOML")
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    if hasattr(v, "tolist"):
        return _value(v.tolist())
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _is_table(v: Any) -> bool:
    # a table of tables or of anything but plain contact amplitudes is a section
    return isinstance(v, dict) and not all(str(k).lstrip("-").isdigit() for k in v)


def _section(name: str, table: dict, lines: list[str]) -> None:
    plain = {k: v for k, v in table.items() if not _is_table(v)}
    if name:
        lines.append(f"[{name}]")
    lines.extend(f"{_key(k)} = {_value(v)}" for k, v in plain.items())
    lines.append("")
    for k, v in table.items():
        if _is_table(v):
            _section(f"{name}.{_key(k)}" if name else _key(k), v, lines)


def toml_text(data: dict, header: str | None = None) -> str:
    """``data`` as TOML text, with an optional ``# header`` comment line."""
    lines = [f"# {header}", ""] if header else []
    _section("", data, lines)
    return "\n".join(lines).rstrip() + "\n"
