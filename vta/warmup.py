"""Compile vta's numba kernels and build the default anatomy once, ahead of the first run.

vta's kernels (assembly, multigrid, point location, field sampling, VTA integration,
axon cables) are numba functions cached on disk (``cache=True``) next to the installed
package. A fresh install compiles them on first use: ~25 s of a first ``vta demo`` went
into compiling on the 2-core reference machine, and the default anatomy is built from
the packaged atlases once. ``vta warmup`` (which ``make setup`` runs) does that work at
install time by running small real cases through every path: the demo scene (3D P2,
anatomy, VTA grid, structure coverage, MRG tract activation) on the coarse "fast" mesh,
a homogeneous ring-lead case (the axisymmetric path) with a small sweep, a directional
case and the simplified (nodes-only) axon model. The basis cache is bypassed (a cached basis would
skip the solver kernels); the anatomy cache and the demo scene's lead-local mesh template
(:mod:`vta.fem.mesh_templates`, default preset) are filled.
"""

from __future__ import annotations

import contextlib
import logging
import time
import tomllib
from collections.abc import Iterator
from importlib import resources

__all__ = ["warm_up"]

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _basis_cache_off() -> Iterator[None]:
    from .fem import cache

    saved = cache.cache_dir

    def no_basis_cache(folder=None):
        return None

    cache.cache_dir = no_basis_cache
    try:
        yield
    finally:
        cache.cache_dir = saved


def _demo_config() -> dict:
    text = resources.files("vta").joinpath("data/demo.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    data.setdefault("solver", {})["preset"] = "fast"
    data.setdefault("output", {})["nifti"] = True
    return data


def _homogeneous(model: str, contacts: dict[str, float], method: str = "auto") -> dict:
    return {
        "lead": {"model": model, "tip_mm": [0.0, 0.0, 0.0], "entry_mm": [0.0, 0.0, 50.0]},
        "domain": {"shape": "sphere", "radius_mm": 20.0, "center_mm": [0.0, 0.0, 4.0]},
        "tissue": {"conductivity_S_per_m": 0.2},
        "stimulation": {"mode": "current", "contacts": contacts, "pulse_width_us": 60},
        "solver": {"preset": "fast", "method": method},
    }


def warm_up() -> dict[str, float]:
    """Run the small cases; returns the seconds each took (the first ones include the
    compilation). Idempotent: a second call only re-runs the cases (a few seconds)."""
    from .scene import Scene
    from .studies.sweep import SweepSpec, standard_configs, sweep_scene

    timings: dict[str, float] = {}

    def step(name: str, fn) -> None:
        t0 = time.perf_counter()
        fn()
        timings[name] = round(time.perf_counter() - t0, 2)
        log.info("warm-up: %s in %.1f s", name, timings[name])

    def demo() -> None:
        Scene.from_dict(_demo_config(), "vta/data/demo.toml").simulate()

    def ring() -> None:
        scene = Scene.from_dict(_homogeneous("Medtronic 3389", {"1": -1.0}))
        scene.simulate()
        spec = SweepSpec(configs=standard_configs(scene.lead, ["monopolar"]), amplitudes=[1.0, 2.0],
                         pulse_widths_us=[60.0])
        sweep_scene(scene, spec)

    def directional() -> None:
        scene = Scene.from_dict(_homogeneous("Boston Scientific Vercise Directed", {"1": -1.0}, "3d"))
        scene.simulate()

    def demo_template() -> None:
        data = _demo_config()
        data["solver"]["preset"] = "default"
        Scene.from_dict(data, "vta/data/demo.toml").lead_mesh()

    def nodes_only() -> None:
        data = _demo_config()
        data["tracts"]["axon_model"] = "simplified"
        Scene.from_dict(data, "vta/data/demo.toml").simulate()

    with _basis_cache_off():
        step("demo scene (3D, anatomy, tracts)", demo)
        step("ring lead (axisymmetric) and sweep", ring)
        step("directional lead (3D)", directional)
        step("simplified axons", nodes_only)
        step("demo mesh template (default preset)", demo_template)
    return timings

