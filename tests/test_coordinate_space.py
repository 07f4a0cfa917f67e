"""Coordinate safety: a Lead-DBS reconstruction must be read in the anatomy's space, and
every run says which space its inputs and outputs are in (NIfTI sform/qform code 4 for
MNI)."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import nibabel as nib
import pytest

import vta
from vta.config import parse_config
from vta.errors import ConfigError
from vta.scene import coordinate_spaces

from test_targets import RIGHT, write_reco

ROOT = Path(__file__).resolve().parents[1]


def _reco_config(tmp_path: Path, space: str) -> dict:
    reco = write_reco(tmp_path / "ea_reconstruction.mat", [("Medtronic 3389", RIGHT)],
                      spaces=("mni", "native", "scrf"))
    return {
        "anatomy": {"atlas": "default"},
        "lead": {"leaddbs_reconstruction": str(reco), "space": space},
        "stimulation": {"mode": "voltage", "contacts": {"0": -3.0}},
        "solver": {"preset": "fast"},
    }


@pytest.mark.parametrize("space", ["native", "scrf"])
def test_patient_space_lead_against_mni_anatomy_is_an_error(tmp_path, space):
    """The left-NAc lead in native space once came back as 'thalamus_L 383.6 mm^3', exit 0."""
    cfg = tmp_path / "plan.toml"
    data = _reco_config(tmp_path, space)
    cfg.write_text("\n".join(
        [f"[{sec}]\n" + "\n".join(f"{k} = {json.dumps(v) if not isinstance(v, dict) else _inline(v)}"
                                  for k, v in body.items()) for sec, body in data.items()]))
    tomllib.loads(cfg.read_text())  # valid TOML
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "vta", "run", str(cfg), "--out", str(out), "-q"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert f"{space} space" in lines[0] and "mni space" in lines[0] and "lead.space" in lines[0]
    assert not out.exists()


def _inline(table: dict) -> str:
    return "{ " + ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in table.items()) + " }"


def test_mni_lead_with_mni_anatomy_and_space_records(tmp_path):
    scene = vta.Scene.from_dict(_reco_config(tmp_path, "mni"), str(tmp_path / "c.toml"))
    assert scene.lead.placement.tip_mm == pytest.approx(RIGHT.tip_mm, abs=1e-6)
    spaces = coordinate_spaces(scene.config)
    assert spaces["anatomy"] == spaces["lead"] == spaces["outputs"] == "mni"
    assert "2009" in spaces["template"] and spaces["nifti_xform_code"] == 4


def test_default_anatomy_is_mni_only():
    with pytest.raises(ConfigError, match="default anatomy is in MNI space"):
        parse_config({"anatomy": {"atlas": "default", "space": "native"},
                      "lead": {"model": "Medtronic 3389", "target": "NAc_R"},
                      "stimulation": {"mode": "current", "contacts": {"0": -1.0}}})
    cfg = parse_config({"lead": {"model": "Medtronic 3389", "tip_mm": [0, 0, 0], "entry_mm": [0, 0, 50]},
                        "domain": {"radius_mm": 20.0, "center_mm": [0, 0, 4]},
                        "tissue": {"conductivity_S_per_m": 0.2}, "stimulation": {"mode": "current", "contacts": {"1": -1.0}}})
    assert coordinate_spaces(cfg) == {"anatomy": None, "template": None, "lead": "unspecified",
                                      "outputs": "unspecified", "nifti_xform_code": 2}


def test_outputs_carry_the_space(tmp_path):
    """summary.json names the spaces; the NIfTI sform/qform codes follow them (4 = MNI
    with the default anatomy, 2 = aligned to another world space)."""
    runs = {"mni": ROOT / "examples" / "nac_alic_demo.toml", "unspecified": ROOT / "examples" / "homogeneous_3389.toml"}
    for space, path in runs.items():
        data = tomllib.loads(path.read_text())
        data.pop("tracts", None)
        data.setdefault("solver", {})["preset"] = "fast"
        out = tmp_path / space
        summary = vta.run(vta.Scene.from_dict(data, str(path)), out)
        assert summary["coordinate_space"]["outputs"] == space
        img = nib.load(out / "vta.nii.gz")
        code = 4 if space == "mni" else 2
        assert int(img.header["sform_code"]) == code and int(img.header["qform_code"]) == code
        assert json.loads((out / "summary.json").read_text())["coordinate_space"]["outputs"] == space


def test_single_props_entry_serves_both_sides(tmp_path):
    """A reconstruction with one reco.props entry and markers for both sides: the left
    lead takes the model of props(1), as Lead-DBS does."""
    import numpy as np
    import scipy.io

    from test_targets import LEFT
    from vta.anatomy.leaddbs import load_leaddbs_reconstruction

    path = write_reco(tmp_path / "two.mat", [("Boston Scientific Vercise Directed", RIGHT),
                                             ("Boston Scientific Vercise Directed", LEFT)])
    m = scipy.io.loadmat(str(path), squeeze_me=False)
    reco = m["reco"][0, 0]
    fields = {name: reco[name] for name in reco.dtype.names}
    fields["props"] = fields["props"][:, :1]
    scipy.io.savemat(str(tmp_path / "one.mat"), {"reco": fields})
    pl, name = load_leaddbs_reconstruction(tmp_path / "one.mat", side="left")
    assert name == "Boston Scientific Vercise Directed"
    np.testing.assert_allclose(pl.tip_mm, LEFT.tip_mm, atol=1e-6)
