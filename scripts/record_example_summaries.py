"""Re-record the regression numbers of the examples (tests/data/example_summaries.json).

Run only when a change of the numbers is intended (a new mesh preset, a model fix), and
say so in the commit:  .venv/bin/python scripts/record_example_summaries.py EXAMPLE [...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import vta
from vta.io import to_jsonable

ROOT = Path(__file__).resolve().parents[1]
STORE = ROOT / "tests" / "data" / "example_summaries.json"


def record(example: str) -> dict:
    s = vta.Scene.from_toml(ROOT / "examples" / f"{example}.toml").simulate().summary()
    return {
        "config": json.loads(json.dumps(to_jsonable(s["config"]))),
        "contacts": {k: {"current_mA": c["current_mA"], "potential_V": c["potential_V"]}
                     for k, c in s["contacts"].items()},
        "dofs": s["mesh"]["dofs"],
        **{key: s[key] for key in ("field_max_on_grid_V_per_mm", "impedance_ohm", "threshold_V_per_mm",
                                   "vta_grid_volume_mm3", "vta_volume_mm3")},
        "structures": {k: v["overlap_mm3"] for k, v in s["structures"].items()},
        "tracts": {k: v["n_activated"] for k, v in s["tracts"].items()},
    }


def main(examples: list[str]) -> int:
    store = json.loads(STORE.read_text())
    for example in examples:
        old = store.get(example, {})
        store[example] = record(example)
        print(f"{example}: impedance {old.get('impedance_ohm')} -> {store[example]['impedance_ohm']} ohm, "
              f"VTA {old.get('vta_volume_mm3')} -> {store[example]['vta_volume_mm3']} mm^3, "
              f"DOFs {old.get('dofs')} -> {store[example]['dofs']}")
    STORE.write_text(json.dumps(store, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
