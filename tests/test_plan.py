"""The planning app: the live response equals `vta run`, the session edits and saves,
and the page in real headless Chromium answers its controls.

The browser test starts ``vta plan`` as a real server process on a free port and
drives it with selenium (Debian's chromium + chromedriver, installed by
``scripts/system-deps.sh``); it is skipped where they are missing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest

from vta.plan.session import PlanSession
from vta.plan.toml_out import toml_text
from vta.scene import Scene

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "nac_alic_demo.toml"
HOMOGENEOUS = ROOT / "examples" / "homogeneous_3389.toml"


def _demo_without_tracts() -> dict:
    data = tomllib.loads(DEMO.read_text())
    data.pop("tracts")
    return data


@pytest.fixture(scope="module")
def demo_session():
    session = PlanSession(_demo_without_tracts(), DEMO)
    session.wait(300)
    yield session
    session.close()


def test_live_setting_equals_a_full_simulation(demo_session):
    """Every number of a live setting is the one `vta run` computes (same quadrature)."""
    result = demo_session.set_setting(contacts={0: -2.0, 2: -3.5})
    assert result is not None
    sim = demo_session.scene.simulate()
    assert result.vta_volume_mm3 == pytest.approx(sim.vta_volume_mm3, rel=1e-9)
    for name, cov in sim.structures.items():
        assert result.structures[name]["overlap_mm3"] == pytest.approx(cov["overlap_mm3"], rel=1e-9, abs=1e-9)
    assert result.impedance_ohm == pytest.approx(sim.state.impedance_ohm, rel=1e-12)
    assert result.clipped_by_domain == sim.clipped_by_domain
    # the planning grid's |E| agrees with the exact field at its voxel centres
    live = demo_session.live
    pts = live.grid.points()[:: 97]
    exact = np.linalg.norm(demo_session.scene.basis.field_at(pts, result.state.potentials_V), axis=1)
    got = result.field_norm_V_per_mm.reshape(-1)[:: 97]
    ok = np.isfinite(exact)
    thr = result.threshold_V_per_mm
    # exact wherever the field can reach the threshold; elsewhere 0 (below it)
    assert np.array_equal(got[ok] >= thr, exact[ok] >= thr)
    shown = got[ok] > 0
    assert shown.sum() > 20
    assert np.allclose(got[ok][shown], exact[ok][shown], rtol=1e-5, atol=1e-6)
    assert np.all(exact[ok][~shown] < thr)


def test_threshold_and_pulse_width_edits_reuse_the_basis(demo_session):
    basis = demo_session.scene.basis
    r1 = demo_session.set_setting(contacts={0: -3.0}, threshold_V_per_mm=0.2)
    r2 = demo_session.set_setting(threshold_V_per_mm=0.3)
    assert demo_session.scene.basis is basis
    assert r2.vta_volume_mm3 < r1.vta_volume_mm3
    r3 = demo_session.set_setting(fiber_diameter_um=3.0, pulse_width_us=60)
    assert r3.threshold_V_per_mm == pytest.approx(demo_session.scene.threshold_at(60))


def test_bad_setting_is_refused_and_changes_nothing(demo_session):
    before = dict(demo_session.data["stimulation"]["contacts"])
    with pytest.raises(Exception, match="contact"):
        demo_session.set_setting(contacts={9: -1.0})
    assert demo_session.data["stimulation"]["contacts"] == before


def test_nudge_moves_the_lead_and_re_solves():
    session = PlanSession(tomllib.loads(HOMOGENEOUS.read_text()), HOMOGENEOUS)
    try:
        session.wait(120)
        tip0 = np.array(session.scene.lead.placement.tip_mm)
        direction = np.array(session.scene.lead.placement.direction)
        session.nudge(depth_mm=0.5)
        assert session.status == "solving"
        session.wait(120)
        assert session.status == "ready"
        tip1 = np.array(session.scene.lead.placement.tip_mm)
        assert np.allclose(tip1 - tip0, -0.5 * direction, atol=1e-3)   # deeper: away from the entry
        session.nudge(tilt_deg=(1.0, 0.0))
        session.wait(120)
        d1 = np.array(session.scene.lead.placement.direction)
        assert np.degrees(np.arccos(np.clip(d1 @ direction, -1, 1))) == pytest.approx(1.0, abs=0.05)
    finally:
        session.close()


def test_saved_plan_reads_back_and_reruns(tmp_path):
    session = PlanSession(tomllib.loads(HOMOGENEOUS.read_text()), HOMOGENEOUS)
    try:
        session.wait(120)
        result = session.set_setting(contacts={1: -2.5})
        summary = session.save(tmp_path / "plan")
    finally:
        session.close()
    plan = tmp_path / "plan" / "plan.toml"
    assert plan.is_file() and "plan.toml" in summary["outputs"]
    assert summary["vta_volume_mm3"] == pytest.approx(result.vta_volume_mm3, rel=1e-9)
    rerun = Scene.from_toml(plan).simulate()
    assert rerun.vta_volume_mm3 == pytest.approx(result.vta_volume_mm3, rel=1e-9)


def test_toml_writer_round_trips():
    data = {"lead": {"model": "Medtronic 3389", "tip_mm": [1.0, 2.5, -3.0], "rotation_deg": 0.0},
            "stimulation": {"mode": "current", "contacts": {"0": -2.0, "3": 1.5}, "pulse_width_us": 60.0},
            "lead_custom": {"levels": [1, 3, 3, 1], "tip_is_contact": False},
            "anatomy": {"atlas": "default", "structures": ["NAc_R", "ALIC R"]}}
    assert tomllib.loads(toml_text(data, header="x")) == data


# ----------------------------------------------------------------------------- browser


def _chromium() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str):
    t0 = time.time()
    last = None
    while time.time() - t0 < timeout:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # element not there yet
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} ({last})")


@pytest.mark.skipif(_chromium() is None, reason="chromium and chromedriver are not installed")
def test_app_in_headless_chromium(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    config = tmp_path / "demo.toml"
    config.write_text(toml_text(_demo_without_tracts()))
    save_dir = tmp_path / "saved"
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log_path = tmp_path / "server.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen([sys.executable, "-m", "vta", "plan", str(config), "--port", str(port),
                                   "--no-browser", "--save-dir", str(save_dir)], stdout=log, stderr=subprocess.STDOUT,
                                  env=env)
    browser, driver_path = _chromium()
    options = Options()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1600,1200"):
        options.add_argument(arg)
    driver = None
    failed = True
    try:
        _wait(lambda: socket.create_connection(("127.0.0.1", port), timeout=0.5).close() or True, 120,
              "the server to listen")
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
        t0 = time.time()
        driver.get(f"http://127.0.0.1:{port}/index.html")

        def volume() -> float | None:
            text = driver.find_element(By.ID, "vta-volume").text.split()[1]
            return float(text)

        v0 = _wait(volume, 300, "the first VTA volume")
        page_load_s = time.time() - t0
        _wait(lambda: "ready" in driver.find_element(By.ID, "status").get_attribute("class") or
              "solved" in driver.find_element(By.ID, "status").text, 60, "the ready state")
        assert driver.find_elements(By.CSS_SELECTOR, "#slice-axial svg")
        assert "C0" in driver.find_element(By.ID, "slice-coronal").get_attribute("innerHTML")

        # change an amplitude: C0 from 3 V to 2 V
        amp = driver.find_element(By.ID, "amp-0")
        amp.send_keys(Keys.CONTROL, "a")
        amp.send_keys("2")
        v1 = _wait(lambda: (v := volume()) != v0 and v, 30, "the VTA volume to change")
        assert v1 < v0
        latency = driver.find_element(By.ID, "latency").text

        # save the plan and compare with `vta run` on the saved configuration
        driver.find_element(By.ID, "save").click()
        _wait(lambda: "saved:" in driver.find_element(By.ID, "saved").text, 180, "the plan to be saved")
        summary = json.loads((save_dir / "summary.json").read_text())
        assert summary["vta_volume_mm3"] == pytest.approx(v1, abs=0.006)
        out = tmp_path / "rerun"
        subprocess.run([sys.executable, "-m", "vta", "run", str(save_dir / "plan.toml"), "--out", str(out), "-q"],
                       check=True, env=env, capture_output=True)
        rerun = json.loads((out / "summary.json").read_text())
        assert rerun["vta_volume_mm3"] == pytest.approx(v1, abs=0.006)
        assert rerun["config"]["stimulation"]["contacts"] == {"0": -2.0, "2": -3.0}

        # move the lead: 0.5 mm deeper; the page shows the solve and then the new scene
        tip_z0 = float(driver.find_element(By.ID, "tip-z").get_attribute("value"))
        driver.find_element(By.ID, "nudge-depth-p").click()
        _wait(lambda: float(driver.find_element(By.ID, "tip-z").get_attribute("value")) != tip_z0, 300,
              "the tip to move")
        _wait(lambda: "solved" in driver.find_element(By.ID, "status").text, 300, "the new solve")
        _wait(lambda: volume() != v1, 30, "the VTA volume of the new position")
        driver.save_screenshot(str(tmp_path / "plan.png"))
        print(f"page load {page_load_s:.1f} s, setting change {latency}")
        failed = False
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        if (failed or server.returncode not in (0, -15, None)) and log_path.exists():
            print(log_path.read_text()[-5000:])  # the server's side of a failure
