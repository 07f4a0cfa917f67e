"""Config validation: every bad key is named, units and ranges are checked."""

import copy
import tomllib
from pathlib import Path

import pytest

from vta import ConfigError, VtaError
from vta.scene import Scene
from vta.config import load_config, parse_config


@pytest.fixture
def design_case():
    """The homogeneous reference case (examples/homogeneous_3389.toml)."""
    return tomllib.loads((Path(__file__).resolve().parents[1] / "examples" / "homogeneous_3389.toml").read_text())


def test_design_case_parses(design_case):
    cfg = parse_config(design_case)
    assert cfg.lead.model.name == "Medtronic 3389"
    assert cfg.domain.outer_grounded and cfg.domain.radius_mm == 25.0
    assert cfg.stimulation.contacts == {1: -1.0}
    assert cfg.vta.threshold_V_per_mm == 0.2
    assert cfg.solver.preset == "default" and cfg.solver.order == 2
    resolved = Scene.from_config(cfg).resolved()
    assert resolved["stimulation"]["contacts"] == {"1": -1.0}
    assert resolved["lead"]["tip_mm"] == [0.0, 0.0, 0.0]


def mutate(case, path, value):
    case = copy.deepcopy(case)
    node = case
    *parents, last = path.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return case


DELETE = object()


@pytest.mark.parametrize(
    "path, value, message",
    [
        ("lead.model", "Medtronic 3398", r"lead.model.*unknown lead model"),
        ("lead.tip_mm", [0, 0], r"lead.tip_mm.*three finite numbers"),
        ("lead.direction", [0, 0, 0], r"lead.direction.*zero-length"),
        ("lead.entry_mm", [0, 0, 10], r"exactly one of 'direction' or 'entry_mm'"),
        ("lead.colour", "red", r"'lead.colour': unknown key"),
        ("domain.radius_mm", -5, r"domain.radius_mm.*positive"),
        ("domain.shape", "cube", r"domain.shape.*one of"),
        ("domain.outer_boundary", "case", r"domain.outer_boundary.*one of"),
        ("tissue.conductivity_S_per_m", 0, r"tissue.conductivity_S_per_m.*positive"),
        ("tissue.conductivity_S_per_m", 200, r"not a tissue conductivity"),
        ("tissue.encapsulation_thickness_mm", -0.1, r"encapsulation_thickness_mm.*>= 0"),
        ("stimulation.mode", "power", r"stimulation.mode.*one of"),
        ("stimulation.contacts", {"9": -1.0}, r"stimulation.contacts.9.*does not exist.*0..3"),
        ("stimulation.contacts", {"one": -1.0}, r"contact keys must be integers"),
        ("stimulation.contacts", {"1": -500.0}, r"outside the plausible range"),
        ("stimulation.contacts", {}, r"non-empty table"),
        ("stimulation.pulse_width_us", -60, r"pulse_width_us.*positive"),
        ("stimulation.contact", {"1": -1}, r"unknown key; did you mean 'contacts'\?"),
        ("vta.threshold_V_per_mm", -0.2, r"vta.threshold_V_per_mm.*positive"),
        ("vta.fiber_diameter_um", 3.0, r"not both"),
        ("solver.preset", "ultra", r"solver.preset.*'fast', 'default', 'fine'"),
        ("solver.order", 3, r"solver.order.*1 or 2"),
        ("output.grid_spacing_mm", 0.001, r"too fine"),
        ("stimulation", DELETE, r"'stimulation': is required"),
        ("extra", {"a": 1}, r"'extra': unknown key"),
    ],
)
def test_bad_config_names_the_key(design_case, path, value, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(mutate(design_case, path, value))


def test_voltage_limit(design_case):
    case = mutate(design_case, "stimulation.mode", "voltage")
    case = mutate(case, "stimulation.contacts", {"1": -30.0})
    with pytest.raises(ConfigError, match=r"-30.0 V is outside"):
        parse_config(case)


def test_axon_diameter_threshold(design_case):
    case = mutate(design_case, "vta", {"fiber_diameter_um": 3.0})
    case = mutate(case, "stimulation.pulse_width_us", 90)
    assert Scene.from_dict(case).threshold_V_per_mm == pytest.approx(0.185)
    case = mutate(case, "stimulation.pulse_width_us", 400)
    with pytest.raises(ConfigError, match="vta.fiber_diameter_um.*outside the Astrom table"):
        Scene.from_dict(case)


def test_entry_point_and_custom_lead(design_case):
    case = mutate(design_case, "lead.direction", DELETE)
    case = mutate(case, "lead.entry_mm", [0.0, 0.0, 50.0])
    case = mutate(case, "lead.model", "custom")
    case = mutate(case, "lead.custom", {"levels": [1, 1, 1], "contact_length_mm": 2.0, "gaps_mm": 1.0, "diameter_mm": 1.3, "tip_length_mm": 1.0})
    cfg = Scene.from_dict(case)
    assert cfg.lead.model.n_contacts == 3
    assert cfg.lead.placement.direction.tolist() == [0.0, 0.0, 1.0]


def test_load_config_file_errors(tmp_path):
    with pytest.raises(VtaError, match="config file not found"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[lead\nmodel = 1")
    with pytest.raises(VtaError, match="is not valid TOML"):
        load_config(bad)


ANATOMY_CASE = """
[anatomy]
atlas = "default"
[lead]
model = "SceneRay SR1242"
target = "NAc_R"
[stimulation]
mode = "voltage"
contacts = { 0 = -3.0 }
"""


def test_anatomy_target_and_defaults():
    cfg = Scene.from_dict(tomllib.loads(ANATOMY_CASE))
    assert cfg.config.anatomy.atlas == "default"
    assert cfg.config.tissue.model == "colecole4" and cfg.config.tissue.conductivity_S_per_m is None
    # default domain: a grounded 30 mm sphere around the middle of the contacts
    assert cfg.domain.shape == "sphere" and cfg.domain.radius_mm == 30.0 and cfg.domain.outer_grounded
    tip = cfg.lead.placement.tip_mm
    assert tip[0] > 5 and tip[2] < -5  # right NAc (CIT168 centroid ~(9.4, 8.9, -10), Pauli 2018)
    anatomy = cfg.anatomy
    assert anatomy.structure("NAc_R").contains(cfg.lead.placement.contact_center_mm(cfg.lead.model, 0)[None])[0]
    assert Scene.from_dict(tomllib.loads(ANATOMY_CASE)).anatomy is anatomy  # loaded once per process


@pytest.mark.parametrize(
    "old, new, message",
    [
        ('atlas = "default"', 'atlas = "colin27"', r"anatomy.atlas.*'default' or 'default-aal3'"),
        ('atlas = "default"', 'tissue_nifti = "missing.nii.gz"', r"anatomy.tissue_nifti.*file not found"),
        ('target = "NAc_R"', 'target = "STN_R"', r"lead.target.*one of"),
        ('target = "NAc_R"', 'target = "NAc_R"\ntip_mm = [0.0, 0.0, 0.0]', r"exactly one of 'tip_mm', 'target'"),
    ],
)
def test_bad_anatomy_config(old, new, message):
    with pytest.raises(ConfigError, match=message):
        Scene.from_dict(tomllib.loads(ANATOMY_CASE.replace(old, new)))


def test_tissue_model_needs_anatomy(design_case):
    case = mutate(design_case, "tissue.model", "colecole4")
    with pytest.raises(ConfigError, match=r"tissue.model.*needs an \[anatomy\]"):
        parse_config(case)


def test_class_conductivities_replace_the_model(design_case):
    """``[tissue] gm_S_per_m`` (etc.) with an anatomy replace the preset's value of that
    class (the quasi-static model and the time-domain classes); without an anatomy they
    are an error; out of range as every conductivity."""
    from vta.anatomy.atlas_io import CSF, GM, WM
    from vta.timedomain.run import dispersive_tissue_of

    case = tomllib.loads(ANATOMY_CASE)
    case["tissue"] = {"model": "colecole4", "gm_S_per_m": 0.1, "csf_S_per_m": 1.8}
    scene = Scene.from_dict(case)
    c = scene.conductivity
    assert (c.gm_S_per_m, c.csf_S_per_m) == (0.1, 1.8)
    assert c.wm_S_per_m == pytest.approx(0.0590, abs=2e-4)  # Cole-Cole WM at 130 Hz, kept
    assert scene.resolved()["tissue"]["class_S_per_m"] == {"GM": 0.1, "CSF": 1.8}  # in summary.json's config
    td = dispersive_tissue_of(scene)
    assert td.class_tissues[GM] == 0.1 and td.class_tissues[CSF] == 1.8 and td.class_tissues[WM] == "WM"
    with pytest.raises(ConfigError, match=r"tissue.wm_S_per_m.*needs an \[anatomy\]"):
        parse_config(mutate(design_case, "tissue.wm_S_per_m", 0.1))
    case["tissue"]["gm_S_per_m"] = 30.0
    with pytest.raises(ConfigError, match=r"tissue.gm_S_per_m.*plausible range"):
        Scene.from_dict(case)


# --- plausible ranges (conductivity, VTA threshold) ---------------------------------

@pytest.mark.parametrize("path, value", [
    ("tissue.conductivity_S_per_m", 5.0),       # accepted before (only > 10 was rejected)
    ("tissue.conductivity_S_per_m", 0.001),
    ("tissue.conductivity_S_per_m", 200),
    ("tissue.encapsulation_conductivity_S_per_m", 50.0),
    ("tissue.encapsulation_conductivity_S_per_m", 0.002),
])
def test_conductivity_outside_stated_range_rejected(design_case, path, value):
    from vta.anatomy.tissue import SIGMA_MAX_S_PER_M, SIGMA_MIN_S_PER_M

    stated = f"{SIGMA_MIN_S_PER_M:g}-{SIGMA_MAX_S_PER_M:g} S/m"
    assert stated == "0.01-2 S/m"
    with pytest.raises(ConfigError, match=rf"'{path}'.*{stated.replace('.', '[.]')}") as exc:
        parse_config(mutate(design_case, path, value))
    assert "\n" not in str(exc.value)


def test_conductivity_range_is_inclusive(design_case):
    from vta.anatomy.tissue import SIGMA_MAX_S_PER_M, SIGMA_MIN_S_PER_M

    for v in (SIGMA_MIN_S_PER_M, SIGMA_MAX_S_PER_M):
        case = mutate(design_case, "tissue.conductivity_S_per_m", v)
        case = mutate(case, "tissue.encapsulation_conductivity_S_per_m", v)
        cfg = parse_config(case)
        assert cfg.tissue.conductivity_S_per_m == cfg.tissue.encapsulation_conductivity_S_per_m == v
    # the derived default encapsulation value (tissue / 2) is unused without an encapsulation layer ...
    case = mutate(design_case, "tissue.conductivity_S_per_m", 0.015)
    assert "encapsulation_conductivity_S_per_m" not in case["tissue"]
    assert parse_config(case).tissue.encapsulation_conductivity_S_per_m == pytest.approx(0.0075)


def test_default_encapsulation_conductivity_outside_range_rejected(design_case):
    """... but with a layer the default (tissue / 2 = 0.0075 S/m) would be used: name the key to set."""
    case = mutate(design_case, "tissue.conductivity_S_per_m", 0.015)
    case = mutate(case, "tissue.encapsulation_thickness_mm", 0.2)
    with pytest.raises(ConfigError, match=r"'tissue.encapsulation_conductivity_S_per_m'.*default.*0[.]0075 S/m"
                                          r".*0[.]01-2 S/m"):
        parse_config(case)
    case = mutate(case, "tissue.encapsulation_conductivity_S_per_m", 0.01)
    assert parse_config(case).tissue.encapsulation_conductivity_S_per_m == 0.01


def test_anatomy_background_conductivity_range():
    text = ANATOMY_CASE + "[tissue]\nconductivity_S_per_m = 3.0\n"
    with pytest.raises(ConfigError, match=r"'tissue.conductivity_S_per_m'.*0[.]01-2 S/m"):
        parse_config(tomllib.loads(text))


@pytest.mark.parametrize("value", [1e9, 150.0, 0.0, -0.2])
def test_absurd_vta_threshold_rejected(design_case, value):
    from vta.config import MAX_THRESHOLD_V_PER_MM

    assert MAX_THRESHOLD_V_PER_MM == 100.0
    with pytest.raises(ConfigError, match=r"'vta.threshold_V_per_mm'.*0 < threshold <= 100 V/mm") as exc:
        parse_config(mutate(design_case, "vta.threshold_V_per_mm", value))
    assert "\n" not in str(exc.value)


def test_vta_threshold_upper_bound_inclusive(design_case):
    from vta.config import MAX_THRESHOLD_V_PER_MM

    cfg = parse_config(mutate(design_case, "vta.threshold_V_per_mm", MAX_THRESHOLD_V_PER_MM))
    assert cfg.vta.threshold_V_per_mm == MAX_THRESHOLD_V_PER_MM

