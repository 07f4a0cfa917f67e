"""Latency of the planning app (`vta plan`): setting change, lead move, page load.

Setting change: :meth:`vta.plan.session.PlanSession.set_setting` (the live VTA volume,
structure overlaps, planning grid, charge checks) plus the view refresh the page does
with it (3D view update, the three SVG slices), timed in-process over a series of
amplitude edits. Lead move: a 0.5 mm nudge until the new scene is live (mesh, solve,
live preparation; the basis cache is off so that every move really solves; the mesh
comes from the lead-local template that the first solve built). Page load:
a real headless Chromium opening the running app until the first VTA volume shows;
and the round trip a user sees: typing an amplitude in the page until the new VTA volume
is on screen (skipped without chromium/chromedriver).

    python benchmarks/bench_plan.py            # the NAc/ALIC demo scene (tracts off)

Prints a table and writes benchmarks/results/plan_latency.json.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from benchlib import machine  # noqa: E402


def _config(tracts: bool) -> dict:
    data = tomllib.loads((ROOT / "examples" / "nac_alic_demo.toml").read_text())
    if not tracts:
        data.pop("tracts")
    return data


def session_latencies(n_edits: int = 20) -> dict:
    from vta.plan.session import PlanSession
    from vta.plan.slices_svg import SliceRenderer
    from vta.plan.view3d import PlanView3D

    # the basis cache off (every move solves); mesh templates in a fresh folder: the
    # first solve meshes with gmsh, the moves read the lead-local template
    os.environ["VTA_CACHE_DIR"] = tempfile.mkdtemp(prefix="vta-bench-plan-")
    os.environ["VTA_BASIS_CACHE"] = "off"
    t0 = time.perf_counter()
    session = PlanSession(_config(False), ROOT / "examples" / "nac_alic_demo.toml")
    session.wait()
    first_solve = time.perf_counter() - t0
    view, slices = PlanView3D(), SliceRenderer()
    view.set_scene(session.live, session.result)
    slices.render(session.live, session.result)
    edits, evals = [], []
    for i in range(n_edits):
        amp = -2.0 - 0.1 * (i % 10)
        t = time.perf_counter()
        result = session.set_setting(contacts={0: amp, 2: -3.0})
        view.update(result)
        slices.render(session.live, result)
        edits.append(time.perf_counter() - t)
        evals.append(result.elapsed_s)
        session.wait()
    moves = []
    for step in (0.5, -0.5):
        t = time.perf_counter()
        session.nudge(depth_mm=step)
        session.wait()
        moves.append(time.perf_counter() - t)
    session.close()
    return {
        "first_solve_s": first_solve,
        "setting_change_ms_median": 1000 * statistics.median(edits),
        "setting_change_ms_p90": 1000 * sorted(edits)[int(0.9 * len(edits)) - 1],
        "live_numbers_ms_median": 1000 * statistics.median(evals),
        "lead_move_s_median": statistics.median(moves),
    }


_EDIT_JS = """
const value = arguments[0], done = arguments[arguments.length - 1];
const input = document.getElementById('amp-0');
const shown = () => document.getElementById('vta-volume').textContent;
const before = shown();
const t0 = performance.now();
input.value = value;
input.dispatchEvent(new Event('input', {bubbles: true}));
const poll = () => {
  if (shown() !== before) { done(performance.now() - t0); return; }
  if (performance.now() - t0 > 5000) { done(null); return; }
  requestAnimationFrame(poll);
};
poll();
"""


def browser_latencies(n_edits: int = 8) -> tuple[float | None, dict[str, list[float]]]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not (browser and driver_path):
        return None, {}
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "vta", "plan", str(ROOT / "examples" / "nac_alic_demo.toml"),
                               "--port", str(port), "--no-browser"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    options = Options()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1600,1200"):
        options.add_argument(arg)
    driver = None
    try:
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(20)  # let the server finish its first solve: the page load is what is timed
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
        t0 = time.perf_counter()
        driver.get(f"http://127.0.0.1:{port}/index.html")
        load = None
        while time.perf_counter() - t0 < 120:
            try:
                text = driver.find_element(By.ID, "vta-volume").text.split()
                if len(text) > 1 and text[1] != "-":
                    load = time.perf_counter() - t0
                    break
            except Exception:
                pass
            time.sleep(0.05)
        round_trips = {}
        # type a new amplitude into C0's field and wait (in the page) for the VTA volume
        # on screen to change: browser -> server -> browser, as a user sees it. Edits 1 s
        # apart overlap the tract activation (axon models) that starts when edits pause;
        # 4 s apart they find the machine idle.
        for label, spacing_s in (("busy", 1.0), ("idle", 4.0)):
            trips = []
            for i in range(n_edits):
                ms = driver.execute_async_script(_EDIT_JS, f"{2.0 + 0.1 * (i % 10):.1f}")
                if ms is not None:
                    trips.append(ms)
                time.sleep(spacing_s)
            round_trips[label] = trips
        return load, round_trips
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(10)


def main() -> int:
    result = {"machine": machine(), "case": "NAc/ALIC demo scene, SceneRay SR1242, default anatomy"}
    result.update(session_latencies())
    result["page_load_s"], trips = browser_latencies()
    for label, values in trips.items():
        result[f"browser_setting_change_{label}_ms_median"] = statistics.median(values) if values else None
        result[f"browser_setting_change_{label}_ms_p90"] = (sorted(values)[int(0.9 * len(values)) - 1]
                                                            if values else None)
    rows = [("first solve (cache off)", f"{result['first_solve_s']:.1f} s"),
            ("setting change, live numbers", f"{result['live_numbers_ms_median']:.0f} ms (median)"),
            ("setting change, numbers + 3D + slices", f"{result['setting_change_ms_median']:.0f} ms (median), "
                                                      f"{result['setting_change_ms_p90']:.0f} ms (p90)"),
            ("lead move 0.5 mm (mesh + solve + live)", f"{result['lead_move_s_median']:.1f} s"),
            ("page load to first VTA", "n/a" if result["page_load_s"] is None else f"{result['page_load_s']:.1f} s")]
    rows += [(f"setting change in the browser, {label} (type -> new VTA shown)",
              f"{result[f'browser_setting_change_{label}_ms_median']:.0f} ms (median), "
              f"{result[f'browser_setting_change_{label}_ms_p90']:.0f} ms (p90)") for label in trips]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    out = HERE / "results" / "plan_latency.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
