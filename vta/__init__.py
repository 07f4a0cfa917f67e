"""vta: finite-element modelling of deep brain stimulation.

Place a lead in anatomy, solve the electric field once per contact, and get the volume
of tissue activated (VTA) for any stimulation setting by exact superposition::

    import vta

    scene = vta.Scene.from_toml("examples/nac_alic_demo.toml")   # resolved once
    sim = scene.simulate()                                      # the configured setting
    sim2 = scene.simulate(vta.Setting("voltage", {0: -2.0}))   # another one: no re-solve
    print(sim2.vta_volume_mm3, sim2.structures["NAc_R"]["fraction"])
    vta.write(sim2, "out/plan")                                 # summary.json + NIfTI
    rows = vta.sweep(scene, vta.SweepSpec(vta.standard_configs(4), [1, 2, 3]))
    ranked = vta.optimise(scene, vta.standard_configs(4, mode="voltage"))
    vta.render(sim2, "out/views")                               # PNGs + interactive HTML
    vta.run_batch("cohort.csv", "out/cohort", template="base.toml")  # a cohort on Dask
    vta.run_group("out/cohort", "craving_reduction")            # sweet spot, fibres, prediction

Heavy optional parts (Dask, VTK rendering) are imported only when used.
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import Any

from .errors import ConfigError, VtaError
from .fem.stimulation import Setting
from .leads import LeadModel, LeadPlacement, custom_lead, get_lead, lead_catalogue

__all__ = [
    "ConfigError",
    "LeadModel",
    "LeadPlacement",
    "Limits",
    "Scene",
    "Setting",
    "Simulation",
    "SweepSpec",
    "VtaError",
    "__version__",
    "custom_lead",
    "get_lead",
    "lead_catalogue",
    "load_cohort",
    "load_manifest",
    "make_synthetic_cohort",
    "optimise",
    "render",
    "run",
    "run_batch",
    "run_group",
    "standard_configs",
    "sweep",
    "write",
]

# name -> (module, attribute): loaded on first access so that `import vta` stays light
_LAZY = {
    "Scene": ("vta.scene", "Scene"),
    "Simulation": ("vta.scene", "Simulation"),
    "run": ("vta.outputs", "run"),
    "write": ("vta.outputs", "write"),
    "sweep": ("vta.studies.sweep", "sweep_scene"),
    "SweepSpec": ("vta.studies.sweep", "SweepSpec"),
    "standard_configs": ("vta.studies.sweep", "standard_configs"),
    "optimise": ("vta.studies.optimise", "optimise_scene"),
    "Limits": ("vta.studies.optimise", "Limits"),
    "render": ("vta.views.render", "render"),
    "run_batch": ("vta.studies.batch", "run_batch"),
    "load_manifest": ("vta.studies.manifest", "load_manifest"),
    "run_group": ("vta.cohort.run", "run_group"),
    "load_cohort": ("vta.cohort.table", "load_cohort"),
    "make_synthetic_cohort": ("vta.cohort.synthetic", "make_synthetic_cohort"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vta' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
