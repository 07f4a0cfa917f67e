"""Run configuration: TOML -> validated, typed dataclasses.

Every key is checked; unknown keys are rejected by their full path (``stimulation.contact``
is an error, not silently ignored). Units are in the key names or stated below.

This module only parses: it reads no anatomy, atlas or reconstruction file (it checks
that named files exist). What needs them - placing the lead at a target or from a
Lead-DBS reconstruction, the default domain, the Astrom threshold, the checks against
the anatomy - is resolved once by :class:`vta.scene.Scene`.

Sections and keys
-----------------
``[lead]``
    ``model`` (catalogue name or alias, or ``"custom"``), ``tip_mm`` (3 floats, mm, the
    distal end), ``direction`` (3 floats, from tip towards the entry point) *or*
    ``entry_mm`` (3 floats, mm), ``rotation_deg`` (float, default 0).
    Instead of ``tip_mm``: ``target`` (a preset such as ``"NAc_R"``: tip in the NAc,
    trajectory through the ALIC; ``align = "tip"`` or ``"span"``), or
    ``leaddbs_reconstruction`` (path to ``ea_reconstruction.mat``) with ``side``
    (``"right"``/``"left"``) and ``space`` (``"mni"``, ``"native"`` or ``"scrf"``).
``[lead.custom]`` (only with ``model = "custom"``)
    ``levels`` (list of 1/3), ``contact_length_mm``, ``gaps_mm`` (float or list),
    ``diameter_mm``, ``tip_length_mm``, ``tip_is_contact`` (bool), ``name``.
``[anatomy]`` (optional)
    ``atlas`` (``"default"`` = embedded MNI152 + HCPex + derived ALIC, ``"default-aal3"``)
    or user files: ``tissue_nifti`` + ``tissue_labels`` (table label -> GM/WM/CSF/blood),
    ``labels_nifti`` + ``label_table`` (+ ``structures`` list), ``probabilistic_nifti`` +
    ``probabilistic_names``, ``t1_nifti``, ``allow_different_grids``; and optionally
    ``dti_nifti`` (6 components), ``dti_order`` (``"fsl"``/``"mrtrix"``/``"lower"``),
    ``dti_mapping`` (``"normalized"``/``"tuch"``); ``space`` (``"mni"``, ``"native"``,
    ``"scrf"``; the default atlas is MNI) names the files' coordinate space, which a Lead-DBS
    reconstruction must match. Paths are relative to the config file.
``[domain]`` (required without anatomy; with anatomy it defaults to a 30 mm sphere
    centred on the middle of the contacts, outer boundary grounded)
    ``shape`` (``"sphere"``/``"box"``), ``radius_mm`` (sphere), ``size_mm`` (box, 3 floats),
    ``center_mm`` (3 floats), ``outer_boundary`` (``"ground"``: the outer boundary is the
    return electrode / case; ``"insulating"``: no current leaves through it).
``[tissue]``
    ``conductivity_S_per_m`` (S/m; homogeneous tissue, required without anatomy),
    ``model`` (with anatomy: ``"colecole4"`` at the stimulation frequency (default),
    ``"constant"``, ``"horn2017"``, ``"horn2017_10khz"``), ``gm_S_per_m``, ``wm_S_per_m``,
    ``csf_S_per_m``, ``blood_S_per_m`` (with anatomy: constant values, S/m, that replace
    the model's for those classes, also in a time-domain run), ``encapsulation_thickness_mm`` (mm, default 0),
    ``encapsulation_conductivity_S_per_m`` (S/m, default: tissue conductivity / 2);
    ``dispersive_tissue`` (homogeneous tissue only: ``"GM"``, ``"WM"``, ``"CSF"`` or
    ``"blood"``, the Cole-Cole tissue of a time-domain run; without it that run is
    resistive).
``[stimulation]``
    ``mode`` (``"current"`` mA / ``"voltage"`` V), ``contacts`` (table contact index ->
    amplitude; cathodic is negative; contacts not listed float), ``pulse_width_us``,
    ``frequency_hz``.
``[vta]``
    ``threshold_V_per_mm`` (V/mm, default 0.2) or ``fiber_diameter_um`` (um, the outer
    diameter of myelinated fibres; ``axon_diameter_um`` is its old name here; threshold
    from the Astrom 2015 table at the pulse width); ``method`` (``"efield"``: |E| above
    the threshold (default); ``"activating_function"``: also the activating-function VTA
    (largest second directional derivative of the potential above the MRG-calibrated
    threshold of ``fiber_diameter_um``, default 5.7 um, at the pulse width)).
``[tracts]`` (optional; fibre-tract activation by axon cable models)
    ``default_bundle`` (``"ALIC"``: the synthetic ALIC bundle generated from the default
    anatomy on the lead's side; needs ``atlas = "default"``), ``files`` (list of
    streamline files .trk/.tck/.vtk, or tables ``{ path, name, offset_mm }``),
    ``axon_model`` (``"mrg"``: McIntyre 2002 double cable (default), ``"simplified"``:
    nodes only), ``fiber_diameter_um`` (um, default 5.7), ``axon_length_mm`` (mm,
    default 30), ``max_distance_mm`` (fibres farther from every active contact are not
    simulated and count as not activated; default ``"auto"``: where a point source of
    the largest current would fall below 0.03 V/mm), ``max_fibres`` (per tract, a
    deterministic subsample; default 400), ``recharge`` (``"passive"``, ``"symmetric"``,
    ``"none"``).
``[solver]``
    ``preset`` (``"fast"``/``"default"``/``"fine"``), ``order`` (1 or 2), ``method``
    (``"auto"``/``"3d"``/``"axisymmetric"``), ``linear_solver`` (``"auto"``/``"amg"``/
    ``"direct"``).
``[output]``
    ``grid_spacing_mm`` (mm, default 0.25), ``grid_margin_mm`` (mm or ``"auto"``),
    ``nifti`` (bool), ``vtu`` (bool, the 3D mesh with the field); ``leaddbs`` (a Lead-DBS
    patient folder: also write its ``stimulations/MNI152NLin2009bAsym/<leaddbs_label>/``
    files, MNI-space runs only), ``leaddbs_label``, ``leaddbs_model``, ``leaddbs_legacy``
    (see :mod:`vta.leaddbs_export`).
``[signal]`` (optional; the time-domain run in dispersive tissue, see
    :mod:`vta.timedomain`) ``shape`` (``"rectangular"``, ``"biphasic"``,
    ``"passive_recharge"``, ``"csv"``), ``pulse_width_us`` and ``frequency_hz`` (default
    ``[stimulation]``'s), ``interphase_gap_us``, ``second_phase_ratio``, ``csv``,
    ``spectrum`` (``"full"``, ``"octave"``, ``"adaptive"``), ``cutoff_hz``, ``tolerance``;
    validated by :func:`vta.timedomain.signal.parse_signal` when the scene is built.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .config_tables import Section as _Section
from .errors import ConfigError, VtaError
from .leaddbs_export import check_space, parse_output_keys
from .leads import LeadModel, LeadPlacement, custom_lead, get_lead

__all__ = [
    "DomainConfig",
    "LeadConfig",
    "LeadSpec",
    "OutputConfig",
    "RunConfig",
    "SolverConfig",
    "StimulationConfig",
    "TissueConfig",
    "TractFile",
    "TractsConfig",
    "VtaConfig",
    "load_config",
    "parse_config",
]

#: Largest accepted amplitudes: above every clinical stimulator's range
#: (e.g. 25.5 mA / 10.5 V) with a margin; beyond them the input is taken as a typo.
MAX_CURRENT_MA = 30.0
MAX_VOLTAGE_V = 25.0
#: Largest accepted VTA threshold (V/mm): far above every axon threshold in the
#: literature (~0.05-2 V/mm, e.g. Astrom 2015); a larger value is taken as a unit/typo error.
MAX_THRESHOLD_V_PER_MM = 100.0


#: ``[tissue]`` keys of per-class conductivities (with an anatomy), by tissue class
CLASS_CONDUCTIVITY_KEYS = {"GM": "gm_S_per_m", "WM": "wm_S_per_m", "CSF": "csf_S_per_m", "blood": "blood_S_per_m"}

#: Plausible range (S/m) of an isotropic tissue, class or encapsulation conductivity:
#: from below grey/white matter at low frequency (~0.02 S/m) to CSF (2.0 S/m). Enforced
#: (inclusive) by :class:`ConductivityModel`, :func:`element_conductivity` and the
#: ``[tissue]`` keys of this module; every message states it as :data:`SIGMA_RANGE_TEXT`.
SIGMA_MIN_S_PER_M = 0.01
SIGMA_MAX_S_PER_M = 2.0
#: The range as the messages state it ("0.01-2 S/m").
SIGMA_RANGE_TEXT = f"{SIGMA_MIN_S_PER_M:g}-{SIGMA_MAX_S_PER_M:g} S/m"
# relative slack for rounding only: Gabriel's CSF evaluates to 2.0000000023 S/m at 10 kHz
_SIGMA_RANGE_RTOL = 1e-6


def is_plausible_conductivity(value: Any) -> bool:
    """True if ``value`` is a finite number (S/m) in ``SIGMA_MIN_S_PER_M..SIGMA_MAX_S_PER_M``.

    The bounds are inclusive (up to a 1e-6 relative rounding slack).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    v = float(value)
    return (math.isfinite(v) and SIGMA_MIN_S_PER_M * (1 - _SIGMA_RANGE_RTOL) <= v
            <= SIGMA_MAX_S_PER_M * (1 + _SIGMA_RANGE_RTOL))


@dataclass(frozen=True)
class LeadConfig:
    """Lead model and its placement in world mm (resolved by :class:`vta.scene.Scene`)."""

    model: LeadModel
    placement: LeadPlacement

    @property
    def hemisphere(self) -> str:
        """``"R"`` or ``"L"``: the side of the distal contact (world x >= 0 is right, RAS)."""
        return "R" if float(self.placement.contact_center_mm(self.model, 0)[0]) >= 0 else "L"


@dataclass(frozen=True)
class LeadSpec:
    """How ``[lead]`` places the lead; exactly one of ``placement`` (tip and direction
    given), ``target`` (a preset such as ``"NAc_R"``) or ``reconstruction`` (a Lead-DBS
    ``ea_reconstruction.mat``) is set. ``model`` is None only when the reconstruction
    names it. ``rotation_deg`` is None when not given (0, or the reconstruction's)."""

    model: LeadModel | None
    placement: LeadPlacement | None = None
    target: str | None = None
    align: str = "tip"
    reconstruction: Path | None = None
    side: str = "right"
    space: str = "mni"
    rotation_deg: float | None = None


#: Coordinate spaces of Lead-DBS reconstructions and anatomy: the MNI template, the
#: patient's native (preoperative MRI) space, and Lead-DBS's scrf (native, corrected for
#: brain shift).
COORDINATE_SPACES = ("mni", "native", "scrf")


@dataclass(frozen=True)
class AnatomyConfig:
    """Where the anatomy comes from (loaded by :class:`vta.scene.Scene`)."""

    atlas: str | None
    files: dict[str, Any]
    dti: dict[str, Any] | None
    space: str | None = None

    @property
    def is_default(self) -> bool:
        """True for the embedded default anatomy (``atlas = "default"`` or ``"default-aal3"``)."""
        return self.atlas in ("default", "default-aal3")

    def describe(self) -> dict:
        """Plain-data form for summaries."""
        return {"atlas": self.atlas, **{k: str(v) for k, v in self.files.items() if v is not None},
                "dti": None if self.dti is None else {k: str(v) for k, v in self.dti.items()}}


@dataclass(frozen=True)
class DomainConfig:
    """The volume conductor when no anatomy is given (world mm)."""

    shape: str
    center_mm: np.ndarray
    radius_mm: float | None
    size_mm: np.ndarray | None
    outer_boundary: str

    @property
    def outer_grounded(self) -> bool:
        """True if the outer boundary is the 0 V return electrode."""
        return self.outer_boundary == "ground"


@dataclass(frozen=True)
class TissueConfig:
    """Tissue and encapsulation conductivities (S/m).

    ``conductivity_S_per_m`` is the homogeneous value (no anatomy), or with an anatomy
    the conductivity of its background class; ``model`` names the per-class model.
    """

    conductivity_S_per_m: float | None
    encapsulation_thickness_mm: float
    encapsulation_conductivity_S_per_m: float
    model: str | None = None
    dispersive_tissue: str | None = None
    #: per-class values given in [tissue] (``"GM"``/``"WM"``/``"CSF"``/``"blood"`` -> S/m),
    #: replacing the model's; None when none is given
    class_S_per_m: dict[str, float] | None = None


@dataclass(frozen=True)
class StimulationConfig:
    """Stimulation setting: amplitudes in mA (current) or V (voltage) per active contact."""

    mode: str
    contacts: dict[int, float]
    pulse_width_us: float
    frequency_hz: float


@dataclass(frozen=True)
class VtaConfig:
    """VTA threshold: a fixed ``threshold_V_per_mm`` (V/mm), or ``fiber_diameter_um`` (um)
    whose Astrom 2015 threshold at the pulse width the scene looks up (then
    ``threshold_V_per_mm`` is None); ``method`` ``"efield"`` or ``"activating_function"``
    (adds the activating-function VTA)."""

    threshold_V_per_mm: float | None
    fiber_diameter_um: float | None
    threshold_source: str
    method: str = "efield"


@dataclass(frozen=True)
class TractFile:
    """A streamline file, its display name and an optional world offset (mm)."""

    path: Path
    name: str
    offset_mm: tuple[float, float, float] | None = None


@dataclass(frozen=True)
class TractsConfig:
    """Fibre tracts and the axon model that decides their activation."""

    files: tuple[TractFile, ...]
    default_bundle: str | None
    axon_model: str
    fiber_diameter_um: float
    axon_length_mm: float
    max_distance_mm: float | None
    max_fibres: int
    recharge: str


@dataclass(frozen=True)
class SolverConfig:
    """Discretisation and solver choices."""

    preset: str
    order: int
    method: str
    linear_solver: str


@dataclass(frozen=True)
class OutputConfig:
    """What to write besides summary.json."""

    grid_spacing_mm: float
    grid_margin_mm: float | None
    nifti: bool
    vtu: bool
    leaddbs: str | None = None  # a Lead-DBS patient folder (absolute); see vta.leaddbs_export
    leaddbs_label: str = "vta"
    leaddbs_model: str = "vta"
    leaddbs_legacy: bool = False


@dataclass(frozen=True)
class RunConfig:
    """A validated `vta run` configuration, as written (see :class:`vta.scene.Scene` for
    what it resolves to). ``domain`` is None with an anatomy and no ``[domain]``."""

    lead: LeadSpec
    anatomy: AnatomyConfig | None
    domain: DomainConfig | None
    tissue: TissueConfig
    stimulation: StimulationConfig
    vta: VtaConfig
    solver: SolverConfig
    output: OutputConfig
    source: str = "<dict>"
    tracts: TractsConfig | None = None
    signal: dict | None = None


def _parse_model(sec: _Section, model_name: Any) -> LeadModel:
    if not isinstance(model_name, str):
        raise ConfigError(sec.key("model"), f"must be a string, got {model_name!r}")
    custom = sec.sub("custom")
    if model_name.lower() == "custom":
        if custom is None:
            raise ConfigError(sec.key("custom"), "is required when model = \"custom\"")
        return _parse_custom_lead(custom)
    if custom is not None:
        raise ConfigError(sec.key("custom"), "is only allowed with model = \"custom\"")
    try:
        return get_lead(model_name)
    except VtaError as exc:
        raise ConfigError(sec.key("model"), str(exc)) from None


def _parse_lead(sec: _Section, base: Path) -> LeadSpec:
    rotation = sec.number("rotation_deg", 0.0) if sec.has("rotation_deg") else None
    sources = [k for k in ("tip_mm", "target", "leaddbs_reconstruction") if sec.has(k)]
    if len(sources) != 1:
        raise ConfigError(sec.key("tip_mm"), "give exactly one of 'tip_mm', 'target' or 'leaddbs_reconstruction'")
    if sources[0] == "leaddbs_reconstruction":
        path = _path(sec, "leaddbs_reconstruction", base)
        side = sec.choice("side", ("right", "left"), "right")
        space = sec.choice("space", COORDINATE_SPACES, "mni")
        model = _parse_model(sec, sec.raw("model")) if sec.has("model") else None
        sec.finish()
        return LeadSpec(model, reconstruction=path, side=side, space=space, rotation_deg=rotation)
    model = _parse_model(sec, sec.raw("model"))
    if sources[0] == "target":
        target = sec.raw("target")
        if not isinstance(target, str) or not target:
            raise ConfigError(sec.key("target"), f"must be a target preset name such as \"NAc_R\", got {target!r}")
        align = sec.choice("align", ("tip", "span"), "tip")
        sec.finish()
        return LeadSpec(model, target=target, align=align, rotation_deg=rotation)
    tip = sec.vector3("tip_mm")
    has_dir, has_entry = sec.has("direction"), sec.has("entry_mm")
    if has_dir == has_entry:
        raise ConfigError(sec.key("direction"), "give exactly one of 'direction' or 'entry_mm'")
    direction = sec.vector3("direction") if has_dir else sec.vector3("entry_mm") - tip
    if np.linalg.norm(direction) < 1e-9:
        raise ConfigError(sec.key("direction" if has_dir else "entry_mm"), "gives a zero-length lead direction")
    sec.finish()
    return LeadSpec(model, placement=LeadPlacement(tip, direction, rotation or 0.0), rotation_deg=rotation)


def _path(sec: _Section, name: str, base: Path) -> Path:
    value = sec.raw(name)
    if not isinstance(value, str) or not value:
        raise ConfigError(sec.key(name), f"must be a file path, got {value!r}")
    path = Path(value).expanduser()
    path = path if path.is_absolute() else base / path
    if not path.is_file():
        raise ConfigError(sec.key(name), f"file not found: {path}")
    return path


def _parse_anatomy(sec: _Section | None, base: Path) -> "AnatomyConfig | None":
    if sec is None:
        return None
    atlas = sec.raw("atlas", None)
    file_keys = ("tissue_nifti", "labels_nifti", "probabilistic_nifti")
    has_files = any(sec.has(k) for k in file_keys)
    if atlas is not None and has_files:
        raise ConfigError(sec.key("atlas"), "give either atlas or user files (tissue_nifti/labels_nifti/...), not both")
    if atlas is None and not has_files:
        raise ConfigError(sec.key("atlas"), "give atlas = \"default\" or user files (tissue_nifti, labels_nifti, probabilistic_nifti)")
    files: dict[str, Any] = {}
    if atlas is not None and atlas not in ("default", "default-aal3"):
        raise ConfigError(sec.key("atlas"), f"must be 'default' or 'default-aal3', got {atlas!r}")
    if has_files:
        opt = lambda k: _path(sec, k, base) if sec.has(k) else None  # noqa: E731
        labels_map = sec.raw("tissue_labels", None)
        if labels_map is not None:
            if not isinstance(labels_map, dict):
                raise ConfigError(sec.key("tissue_labels"), "must be a table of label -> GM/WM/CSF/blood")
            try:
                labels_map = {int(k): str(v) for k, v in labels_map.items()}
            except ValueError:
                raise ConfigError(sec.key("tissue_labels"), "keys must be integer labels") from None
        names = sec.raw("probabilistic_names", None)
        if isinstance(names, str):
            names = _path(sec, "probabilistic_names", base)
        structures = sec.raw("structures", None)
        if structures is not None and not (isinstance(structures, list) and all(isinstance(n, str) for n in structures)):
            raise ConfigError(sec.key("structures"), "must be a list of structure names")
        files = {
            "tissue": opt("tissue_nifti"),
            "tissue_mapping": labels_map,
            "labels": opt("labels_nifti"),
            "label_table": opt("label_table"),
            "structures": structures,
            "probabilistic": opt("probabilistic_nifti"),
            "probabilistic_names": names,
            "t1": opt("t1_nifti"),
            "allow_different_grids": sec.boolean("allow_different_grids", False),
        }
    dti = None
    if sec.has("dti_nifti"):
        dti = {
            "path": _path(sec, "dti_nifti", base),
            "order": sec.choice("dti_order", ("fsl", "mrtrix", "lower"), "fsl"),
            "mapping": sec.choice("dti_mapping", ("normalized", "tuch"), "normalized"),
        }
    space = sec.choice("space", COORDINATE_SPACES, "mni") if sec.has("space") else None
    if atlas is not None:
        if space not in (None, "mni"):
            raise ConfigError(sec.key("space"), f"the default anatomy is in MNI space, not {space!r}; give user "
                                                "files (tissue_nifti, ...) for anatomy in another space")
        space = "mni"
    sec.finish()
    return AnatomyConfig(atlas, files, dti, space)


def _parse_custom_lead(sec: _Section) -> LeadModel:
    levels = sec.raw("levels")
    if not isinstance(levels, list) or not levels or not all(v in (1, 3) for v in levels):
        raise ConfigError(sec.key("levels"), f"must be a list of 1 (ring) or 3 (segmented), got {levels!r}")
    gaps = sec.raw("gaps_mm")
    if not isinstance(gaps, (int, float, list)) or isinstance(gaps, bool):
        raise ConfigError(sec.key("gaps_mm"), f"must be a number or a list of numbers, got {gaps!r}")
    try:
        lead = custom_lead(
            str(sec.raw("name", "custom")),
            levels=levels,
            contact_length_mm=sec.number("contact_length_mm", positive=True),
            gaps_mm=gaps,
            diameter_mm=sec.number("diameter_mm", positive=True),
            tip_length_mm=sec.number("tip_length_mm", positive=True),
            tip_is_contact=sec.boolean("tip_is_contact", False),
        )
    except VtaError as exc:
        raise ConfigError(sec.path, str(exc)) from None
    sec.finish()
    return lead


def _parse_domain(sec: _Section) -> DomainConfig:
    shape = sec.choice("shape", ("sphere", "box"), "sphere")
    center = sec.vector3("center_mm")
    radius = size = None
    if shape == "sphere":
        radius = sec.number("radius_mm", positive=True)
    else:
        size = sec.vector3("size_mm")
        if np.any(size <= 0):
            raise ConfigError(sec.key("size_mm"), f"must be positive, got {size.tolist()}")
    outer = sec.choice("outer_boundary", ("ground", "insulating"), "ground")
    sec.finish()
    return DomainConfig(shape, center, radius, size, outer)


#: Cole-Cole tissues of ``[tissue] dispersive_tissue`` (Gabriel et al. 1996).
DISPERSIVE_TISSUES = ("GM", "WM", "CSF", "blood")


def _parse_tissue(sec: _Section | None, has_anatomy: bool) -> TissueConfig:
    sec = sec or _Section({}, "tissue")

    def conductivity(name: str, default: Any = ...) -> float | None:
        # the one range check of every [tissue] conductivity (SIGMA_MIN/MAX_S_PER_M in vta.anatomy.tissue)
        value = sec.number(name, default)
        if value is not None and not is_plausible_conductivity(value):
            raise ConfigError(sec.key(name), f"{value:g} S/m is not a tissue conductivity: must be positive "
                                             f"and within the plausible range {SIGMA_RANGE_TEXT}")
        return value

    model, classes = None, None
    if has_anatomy:
        model = sec.raw("model", "colecole4")  # a preset name: checked by the scene
        if not isinstance(model, str) or not model:
            raise ConfigError(sec.key("model"), f"must be a conductivity preset name, got {model!r}")
        sigma = conductivity("conductivity_S_per_m", None)
        given = {name: conductivity(key) for name, key in CLASS_CONDUCTIVITY_KEYS.items() if sec.has(key)}
        classes = given or None
    else:
        for key in ("model", *CLASS_CONDUCTIVITY_KEYS.values()):
            if sec.has(key):
                raise ConfigError(sec.key(key), "needs an [anatomy]; without one give conductivity_S_per_m")
        sigma = conductivity("conductivity_S_per_m")
    thickness = sec.number("encapsulation_thickness_mm", 0.0, min_value=0.0)
    # the derived default (tissue / 2) is checked only where a layer (thickness > 0) uses it
    enc_default = (sigma if sigma is not None else 0.1) / 2
    enc_given = sec.has("encapsulation_conductivity_S_per_m")
    enc_sigma = conductivity("encapsulation_conductivity_S_per_m") if enc_given else enc_default
    if thickness > 0 and not enc_given and not is_plausible_conductivity(enc_sigma):
        raise ConfigError(sec.key("encapsulation_conductivity_S_per_m"),
                          f"the default (conductivity_S_per_m / 2 = {enc_sigma:g} S/m) is outside the plausible "
                          f"range {SIGMA_RANGE_TEXT}; give encapsulation_conductivity_S_per_m")
    if thickness > 2.0:
        raise ConfigError(sec.key("encapsulation_thickness_mm"), f"{thickness} mm is implausible (expected 0-0.5)")
    dispersive = None
    if sec.has("dispersive_tissue"):
        if has_anatomy:
            raise ConfigError(sec.key("dispersive_tissue"), "is for homogeneous tissue; with an [anatomy] every "
                                                            "class takes its own Cole-Cole model")
        dispersive = sec.raw("dispersive_tissue")
        if dispersive not in DISPERSIVE_TISSUES:
            raise ConfigError(sec.key("dispersive_tissue"), f"must be one of {', '.join(DISPERSIVE_TISSUES)} "
                                                            f"(Gabriel 1996 Cole-Cole tissues), got {dispersive!r}")
    sec.finish()
    return TissueConfig(sigma, thickness, enc_sigma, model, dispersive, classes)


def _parse_stimulation(sec: _Section) -> StimulationConfig:
    mode = sec.choice("mode", ("current", "voltage"))
    raw = sec.raw("contacts")
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(sec.key("contacts"), "must be a non-empty table of contact index -> amplitude")
    unit, limit = ("mA", MAX_CURRENT_MA) if mode == "current" else ("V", MAX_VOLTAGE_V)
    contacts: dict[int, float] = {}
    for k, v in raw.items():
        key = sec.key(f"contacts.{k}")
        try:
            index = int(k)
        except ValueError:
            raise ConfigError(key, "contact keys must be integers (0 = most distal contact)") from None
        if index < 0:
            raise ConfigError(key, "contact index must be >= 0")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConfigError(key, f"amplitude must be a finite number ({unit}), got {v!r}")
        if abs(v) > limit:
            raise ConfigError(key, f"amplitude {v} {unit} is outside the plausible range +-{limit} {unit}")
        contacts[index] = float(v)
    pw = sec.number("pulse_width_us", 60.0, positive=True)
    if pw > 1000:
        raise ConfigError(sec.key("pulse_width_us"), f"{pw} us is outside 0-1000 us")
    freq = sec.number("frequency_hz", 130.0, positive=True)
    if freq > 10000:
        raise ConfigError(sec.key("frequency_hz"), f"{freq} Hz is outside 0-10000 Hz")
    sec.finish()
    if mode == "current" and sum(abs(a) for a in contacts.values()) == 0:
        raise ConfigError(sec.key("contacts"), "all amplitudes are zero")
    return StimulationConfig(mode, dict(sorted(contacts.items())), pw, freq)


def _parse_vta(sec: _Section | None, stim: StimulationConfig) -> VtaConfig:
    if sec is None:
        return VtaConfig(0.2, None, "default 0.2 V/mm")
    method = sec.choice("method", ("efield", "activating_function"), "efield")
    if sec.has("axon_diameter_um") and sec.has("fiber_diameter_um"):
        raise ConfigError(sec.key("axon_diameter_um"), "is the old name of fiber_diameter_um: give one of them")
    diam_key = "axon_diameter_um" if sec.has("axon_diameter_um") else "fiber_diameter_um"  # the old name still works
    has_thr, has_diam = sec.has("threshold_V_per_mm"), sec.has(diam_key)
    if has_thr and has_diam:
        raise ConfigError(sec.key(diam_key), f"give either threshold_V_per_mm or {diam_key}, not both")
    if has_diam:
        diam = sec.number(diam_key, positive=True)
        result = VtaConfig(None, diam, f"Astrom 2015 table, D = {diam} um, PW = {stim.pulse_width_us} us", method)
    else:
        thr = sec.number("threshold_V_per_mm", 0.2)
        if not 0 < thr <= MAX_THRESHOLD_V_PER_MM:
            raise ConfigError(sec.key("threshold_V_per_mm"),
                              f"must be positive and at most {MAX_THRESHOLD_V_PER_MM:g} V/mm (plausible range "
                              f"0 < threshold <= {MAX_THRESHOLD_V_PER_MM:g} V/mm; axon thresholds are "
                              f"~0.05-2 V/mm), got {thr:g}")
        result = VtaConfig(thr, None, "threshold_V_per_mm", method)
    sec.finish()
    return result


def _parse_tracts(sec: _Section | None, anatomy: "AnatomyConfig | None", base: Path) -> TractsConfig | None:
    if sec is None:
        return None
    default = sec.raw("default_bundle", None)
    if default is not None and default is not False:
        if not isinstance(default, str) or default.upper() != "ALIC":
            raise ConfigError(sec.key("default_bundle"), f"must be \"ALIC\" (or absent), got {default!r}")
        if anatomy is None or not anatomy.is_default:
            raise ConfigError(sec.key("default_bundle"), "the default ALIC bundle needs [anatomy] atlas = \"default\"")
        default = "ALIC"
    else:
        default = None
    raw_files = sec.raw("files", [])
    if not isinstance(raw_files, list):
        raise ConfigError(sec.key("files"), "must be a list of paths or { path, name, offset_mm } tables")
    files = []
    for i, item in enumerate(raw_files):
        item_sec = _Section(item if isinstance(item, dict) else {"path": item}, f"{sec.key('files')}[{i}]")
        path = _path(item_sec, "path", base)
        name = item_sec.raw("name", path.name.split(".")[0])
        if not isinstance(name, str) or not name:
            raise ConfigError(item_sec.key("name"), f"must be a non-empty string, got {name!r}")
        offset = item_sec.vector3("offset_mm", None)
        item_sec.finish()
        files.append(TractFile(path, name, None if offset is None else tuple(float(v) for v in offset)))
    names = [f.name for f in files] + (["ALIC_bundle"] if default else [])
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(sec.key("files"), f"tract names must be unique, {dup[0]!r} repeats (give name = ...)")
    if not files and default is None:
        raise ConfigError(sec.key("files"), "give tract files and/or default_bundle = \"ALIC\"")
    model = sec.choice("axon_model", ("mrg", "simplified"), "mrg")
    diam = sec.number("fiber_diameter_um", 5.7, positive=True)  # an MRG table row: checked by the scene
    length = sec.number("axon_length_mm", 30.0, positive=True)
    if not 5.0 <= length <= 100.0:
        raise ConfigError(sec.key("axon_length_mm"), f"must be in [5, 100] mm, got {length:g}")
    dist = None if sec.raw("max_distance_mm", "auto") == "auto" else sec.number("max_distance_mm", positive=True)
    n_max = sec.raw("max_fibres", 400)
    if isinstance(n_max, bool) or not isinstance(n_max, int) or not 1 <= n_max <= 100_000:
        raise ConfigError(sec.key("max_fibres"), f"must be an integer in [1, 100000], got {n_max!r}")
    recharge = sec.choice("recharge", ("passive", "symmetric", "none"), "passive")
    sec.finish()
    return TractsConfig(tuple(files), default, model, diam, length, dist, int(n_max), recharge)


def _parse_solver(sec: _Section | None) -> SolverConfig:
    sec = sec or _Section({}, "solver")
    preset = sec.choice("preset", ("fast", "default", "fine"), "default")
    order = sec.raw("order", 2)
    if order not in (1, 2) or isinstance(order, bool):
        raise ConfigError(sec.key("order"), f"must be 1 or 2, got {order!r}")
    method = sec.choice("method", ("auto", "3d", "axisymmetric"), "auto")
    linear = sec.choice("linear_solver", ("auto", "amg", "direct"), "auto")
    sec.finish()
    return SolverConfig(preset, int(order), method, linear)


def _parse_output(sec: _Section | None, base: Path) -> OutputConfig:
    sec = sec or _Section({}, "output")
    spacing = sec.number("grid_spacing_mm", 0.25, positive=True)
    if spacing < 0.02:
        raise ConfigError(sec.key("grid_spacing_mm"), f"{spacing} mm is too fine (>= 0.02 mm)")
    margin_raw = sec.raw("grid_margin_mm", "auto")
    if margin_raw == "auto":
        margin = None
    else:
        margin = sec.number("grid_margin_mm", positive=True)
    nifti = sec.boolean("nifti", True)
    vtu = sec.boolean("vtu", False)
    leaddbs = parse_output_keys(sec, base, nifti)
    sec.finish()
    return OutputConfig(spacing, margin, nifti, vtu, **leaddbs)


def parse_config(data: dict, source: str = "<dict>") -> RunConfig:
    """Validate a configuration mapping (as read from TOML).

    Raises
    ------
    ConfigError
        Naming the first offending key path.
    """
    root = _Section(data, "")
    base = Path(source).parent if source != "<dict>" else Path.cwd()
    anatomy = _parse_anatomy(root.sub("anatomy"), base)
    lead = _parse_lead(root.table("lead"), base)
    domain_sec = root.sub("domain") if anatomy is not None else root.table("domain")
    domain = _parse_domain(domain_sec) if domain_sec is not None else None
    tissue = _parse_tissue(root.sub("tissue") if anatomy is not None else root.table("tissue"), anatomy is not None)
    stim = _parse_stimulation(root.table("stimulation"))
    if lead.model is not None:
        check_contacts_exist(stim, lead.model)
    vta = _parse_vta(root.sub("vta"), stim)
    tracts = _parse_tracts(root.sub("tracts"), anatomy, base)
    solver = _parse_solver(root.sub("solver"))
    output = _parse_output(root.sub("output"), base)
    signal_sec = root.sub("signal")
    # validated by vta.timedomain.signal.parse_signal when the Scene is built (a higher
    # layer); kept here as written
    signal = dict(signal_sec.data) if signal_sec is not None else None
    root.finish()
    if output.leaddbs is not None:
        check_space(anatomy.space if anatomy is not None else None, lead.space if lead.reconstruction else None)
    return RunConfig(lead, anatomy, domain, tissue, stim, vta, solver, output, source, tracts, signal)


def check_contacts_exist(stim: StimulationConfig, model: LeadModel) -> None:
    """Every stimulated contact must exist on the lead (ConfigError naming the key)."""
    for index in stim.contacts:
        if index >= model.n_contacts:
            raise ConfigError(
                f"stimulation.contacts.{index}",
                f"contact {index} does not exist on '{model.name}' (contacts 0..{model.n_contacts - 1})",
            )


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a TOML configuration file.

    Raises
    ------
    VtaError
        If the file is missing or unreadable, is not valid TOML, or fails validation.
    """
    path = Path(path)
    return parse_config(read_toml(path, "config file"), str(path))


def read_toml(path: str | Path, what: str) -> dict:
    """Read a TOML file; a missing file or bad TOML is a one-line :class:`VtaError`
    naming ``what`` (e.g. ``"config file"``, ``"template"``) and the path."""
    path = Path(path)
    if not path.is_file():
        raise VtaError(f"{what} not found: {path}")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise VtaError(f"{what} {path} is not valid TOML: {exc}") from None
