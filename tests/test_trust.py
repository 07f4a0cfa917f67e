"""Failures that used to look like success: clipped VTAs, warnings only in a log,
signals, oversized leads, inconsistent placement checks (`vta run` end to end)."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "homogeneous_3389.toml"
BASE = EXAMPLE.read_text()


def vta(*args, env=None):
    return subprocess.run([sys.executable, "-m", "vta", *args], capture_output=True, text=True, env=env)


def config(tmp_path: Path, *replacements: tuple[str, str], extra: str = "", name: str = "case.toml") -> Path:
    text = BASE
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / name
    path.write_text(text + extra)
    return path


SMALL_SPHERE = (("radius_mm = 25.0", "radius_mm = 7.0"),)


def test_vta_clipped_by_the_domain_is_flagged(tmp_path):
    """30 mA in a 7 mm sphere: the VTA fills most of the sphere. The run still writes its
    outputs, but says on stderr and in summary.json that the domain cut the VTA off."""
    path = config(tmp_path, *SMALL_SPHERE, ("1 = -1.0", "1 = -30.0"))
    proc = vta("run", str(path), "--out", str(tmp_path / "out"), "-q")
    assert proc.returncode == 0, proc.stderr
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["vta_clipped_by_domain"] is True
    assert len(s["warnings"]) == 1 and "outer boundary of the model domain" in s["warnings"][0]
    assert "outer boundary of the model domain" in proc.stderr
    assert "WARNING" in proc.stdout  # the report repeats it beside the numbers


def test_clean_run_has_an_empty_warning_list(tmp_path):
    proc = vta("run", str(EXAMPLE), "--out", str(tmp_path / "out"), "-q", "--strict")
    assert proc.returncode == 0, proc.stderr
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["warnings"] == [] and s["vta_clipped_by_domain"] is False and s["vta_clipped_by_grid"] is False
    assert proc.stderr == ""


def test_strict_turns_a_warning_into_exit_3(tmp_path):
    path = config(tmp_path, *SMALL_SPHERE, ("1 = -1.0", "1 = -30.0"))
    proc = vta("run", str(path), "--out", str(tmp_path / "out"), "-q", "--strict")
    assert proc.returncode == 3
    assert (tmp_path / "out" / "summary.json").exists()  # the outputs are written all the same


def test_low_conductivity_clips_too(tmp_path):
    """sigma 0.001 S/m at 3 mA reported 65,026 of the sphere's 65,450 mm^3 without a word;
    at the lowest accepted conductivity, 0.01 S/m, 25 mA reaches the 25 mm boundary."""
    path = config(tmp_path, ("conductivity_S_per_m = 0.2", "conductivity_S_per_m = 0.01"), ("1 = -1.0", "1 = -25.0"))
    proc = vta("run", str(path), "--out", str(tmp_path / "out"), "-q")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["vta_clipped_by_domain"] is True


def test_grid_border_is_a_warning_in_the_summary(tmp_path):
    path = config(tmp_path, ("1 = -1.0", "1 = -3.0"), extra="\n[output]\ngrid_margin_mm = 1.0\n")
    proc = vta("run", str(path), "--out", str(tmp_path / "out"), "-q")
    assert proc.returncode == 0, proc.stderr
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["vta_clipped_by_grid"] is True and s["vta_clipped_by_domain"] is False
    assert any("edge of the" in w and "output grid" in w for w in s["warnings"])


def test_config_warnings_reach_the_summary():
    """Warnings logged while the configuration is read (e.g. a Lead-DBS marker warning)
    and while the run computes land in one list; those not about the result do not."""
    from vta.notices import collecting
    import logging

    with collecting() as outer:
        logging.getLogger("vta.anatomy.targets").warning("a configuration warning")
        with collecting() as inner:
            logging.getLogger("vta.scene").warning("a run warning")
            logging.getLogger("vta.fem.cache").warning("cache full", extra={"vta_not_about_result": True})
    assert inner is outer and outer == ["a configuration warning", "a run warning"]


@pytest.mark.parametrize("method", ["axisymmetric", "3d"])
def test_tip_to_boundary_check_is_the_same_on_both_paths(tmp_path, method):
    """The tip 1.5 mm inside the sphere: the axisymmetric path used to accept what the
    3D path refused (it needs the lead radius + 1 mm)."""
    path = config(tmp_path, ("radius_mm = 25.0", "radius_mm = 7.0"), ("center_mm = [0.0, 0.0, 4.25]", "center_mm = [0.0, 0.0, 5.5]"),
                  extra=f'\n[solver]\nmethod = "{method}"\n')
    proc = vta("run", str(path), "--out", str(tmp_path / "out"), "-q")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "lead tip at (0, 0, 0) mm is too close to the boundary" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_empty_out_is_an_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "vta", "run", str(EXAMPLE), "--out", ""], capture_output=True,
                          text=True, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip() == "vta: error: --out is empty: give an output folder"
    assert list(tmp_path.iterdir()) == []


def test_a_lead_with_too_many_contacts_is_refused(tmp_path):
    lead = ('[lead]\nmodel = "custom"\ntip_mm = [0.0, 0.0, 0.0]\ndirection = [0.0, 0.0, 1.0]\n'
            '[lead.custom]\nlevels = [' + ", ".join(["3"] * 100) + ']\ncontact_length_mm = 1.0\ngaps_mm = 0.5\n'
            'diameter_mm = 1.3\ntip_length_mm = 1.0\n')
    text = BASE[BASE.index("[domain]"):].replace("radius_mm = 25.0", "radius_mm = 200.0")
    path = tmp_path / "huge.toml"
    path.write_text(lead + text)
    proc = vta("run", str(path), "--out", str(tmp_path / "out"), "-q")
    assert proc.returncode == 2 and "300 contacts" in proc.stderr and "at most 64" in proc.stderr


BIG_LEAD = ('[lead]\nmodel = "custom"\ntip_mm = [0.0, 0.0, 0.0]\ndirection = [0.0, 0.0, 1.0]\n'
            '[lead.custom]\nlevels = [' + ", ".join(["3"] * 21) + ']\ncontact_length_mm = 1.0\ngaps_mm = 0.5\n'
            'diameter_mm = 1.3\ntip_length_mm = 1.0\n')


@pytest.mark.parametrize("sig, status, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_signal_during_meshing_stops_at_once(tmp_path, sig, status, word):
    """A 63-contact lead meshes for about a minute; SIGINT or SIGTERM while gmsh runs
    ends the run within a second, with one line, its status, and no output or staging."""
    text = BIG_LEAD + BASE[BASE.index("[domain]"):].replace("radius_mm = 25.0", "radius_mm = 40.0").replace(
        "center_mm = [0.0, 0.0, 4.25]", "center_mm = [0.0, 0.0, 16.0]")
    path = tmp_path / "big.toml"
    path.write_text(text)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "vta", "run", str(path), "--out", str(out), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**__import__("os").environ, "VTA_CACHE_DIR": "off"})
    deadline = time.time() + 60
    while time.time() < deadline and not out.exists():  # the transaction opens before meshing
        time.sleep(0.05)
    time.sleep(2.0)
    assert proc.poll() is None, proc.communicate()
    t0 = time.perf_counter()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    elapsed = time.perf_counter() - t0
    assert proc.returncode == status, err
    assert elapsed < 3.0
    assert err.strip().splitlines() == [f"vta: {word}; no partial outputs were written"]
    assert not out.exists()


def test_cache_prune_removes_orphaned_temporary_files(tmp_path):
    """A cache write killed mid-way leaves `.NAME.XXXX.tmp.npz`; pruning removes the old
    ones (not a young one that another process may still be writing)."""
    import os

    from vta.fem.cache import clear_cache, remove_orphans

    old = tmp_path / ".abc.npz.k2j3.tmp.npz"
    young = tmp_path / ".def.npz.x8w1.tmp.npz"
    entry = tmp_path / "0123.npz"
    for f in (old, young, entry):
        f.write_bytes(b"x" * 100)
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert remove_orphans(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [young.name, entry.name]
    assert clear_cache(tmp_path) == 2 and list(tmp_path.iterdir()) == []
