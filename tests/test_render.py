"""3D targeting views: real offscreen renders (PNG), the `vta render` command and the
self-contained HTML scene opened in headless Chromium."""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from vta.errors import VtaError
from vta.scene import Scene

render = pytest.importorskip("vta.views.render")

ROOT = Path(__file__).resolve().parents[1]
HOMOGENEOUS = ROOT / "examples" / "homogeneous_3389.toml"

# A small anatomy case: the demo's lead in the right NAc, bipolar (C0 cathode, C1 anode),
# fast P1 mesh and a coarse grid so that the whole module runs in well under a minute.
SMALL_ANATOMY = """
[anatomy]
atlas = "default"

[lead]
model = "SceneRay SR1242"
target = "NAc_R"

[stimulation]
mode = "voltage"
contacts = { 0 = -3.0, 1 = 1.0 }
pulse_width_us = 90
frequency_hz = 130

[solver]
preset = "fast"
order = 1

[output]
grid_spacing_mm = 0.5
"""


@pytest.fixture(scope="module")
def rendering():
    try:
        return render.check_rendering()
    except VtaError as exc:
        pytest.skip(f"no offscreen OpenGL here: {exc}")


@pytest.fixture(scope="module")
def small_config_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "small.toml"
    path.write_text(SMALL_ANATOMY)
    return path


@pytest.fixture(scope="module")
def anatomy_run(small_config_path):
    return Scene.from_toml(small_config_path).simulate()


@pytest.fixture(scope="module")
def anatomy_scene(anatomy_run):
    return render.view_from_simulation(anatomy_run)


@pytest.fixture(scope="module")
def homogeneous_run():
    return Scene.from_toml(HOMOGENEOUS).simulate()


# --- colour classes of rendered pixels ------------------------------------------------------


def _hsv(img):
    from matplotlib.colors import rgb_to_hsv

    return rgb_to_hsv(img[..., :3].astype(float) / 255.0)


def vta_pixels(img):
    """Orange (the VTA, #ff7f0e, shaded): hue 18-38 deg, saturated, not dark."""
    h, s, v = np.moveaxis(_hsv(img), -1, 0)
    return (h * 360 > 18) & (h * 360 < 38) & (s > 0.7) & (v > 0.35)


def cathode_pixels(img):
    """Blue (#1f6bff, shaded): hue 205-235 deg, strongly saturated (viridis blues are not)."""
    h, s, v = np.moveaxis(_hsv(img), -1, 0)
    return (h * 360 > 205) & (h * 360 < 235) & (s > 0.75) & (v > 0.45)


def anode_pixels(img):
    """Red (#e8202a, shaded)."""
    h, s, v = np.moveaxis(_hsv(img), -1, 0)
    return ((h * 360 < 8) | (h * 360 > 350)) & (s > 0.75) & (v > 0.45)


def fibre_pixels(img):
    """Magenta (#ff3df2)."""
    h, s, v = np.moveaxis(_hsv(img), -1, 0)
    return (h * 360 > 295) & (h * 360 < 315) & (s > 0.6) & (v > 0.5)


def load_png(path):
    return np.asarray(PILImage.open(path).convert("RGB"))


def vta_silhouette(scene, info, dilate_px=4):
    """Pixels onto which the VTA voxels project (the VTA's outline in the image)."""
    from scipy.ndimage import binary_dilation

    g = scene.vta.grid
    ijk = np.argwhere(scene.vta.mask)
    px = np.rint(info.project(g.origin_mm + g.spacing_mm * ijk)).astype(int)
    w, h = info.size
    sil = np.zeros((h, w), bool)
    ok = (px[:, 0] >= 0) & (px[:, 0] < w) & (px[:, 1] >= 0) & (px[:, 1] < h)
    sil[px[ok, 1], px[ok, 0]] = True
    # voxels are several pixels apart: close the gaps, then allow the surface smoothing
    spacing_px = g.spacing_mm * np.linalg.norm(info.world_to_px[:, :3], axis=1).max()
    return binary_dilation(sil, iterations=int(np.ceil(spacing_px)) + dilate_px)


# --- PNG views ---------------------------------------------------------------------------------


def test_import_does_not_load_pyvista():
    code = "import sys, vta, vta.views.render; print('pyvista' in sys.modules, 'vtk' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_scene_contents(anatomy_scene, anatomy_run):
    lead = anatomy_run.scene.lead
    s = anatomy_scene
    assert s.polarity == ("cathode", "anode", "inactive", "inactive")
    assert s.hemisphere == "R"
    # focus between the two active contacts
    c0, c1 = (lead.placement.contact_center_mm(lead.model, k) for k in (0, 1))
    np.testing.assert_allclose(s.focus_mm, 0.5 * (c0 + c1), atol=1e-9)
    assert {n.split("_")[0] for n in s.structures} == {"NAc", "ALIC", "caudate", "putamen"}
    assert all(n.endswith("_R") for n in s.structures)
    assert s.t1 is not None and s.fov_mm >= 40.0
    # each cut plane passes through the lead axis (anterior/lateral) or across it (trajectory)
    for cam, fs in s.field_slices.items():
        assert fs.values_V_per_mm.shape[0] == fs.values_V_per_mm.shape[1] > 100
        assert np.abs(np.linalg.norm(fs.normal) - 1) < 1e-9
        if cam == "trajectory":
            assert abs(fs.normal @ s.axis) == pytest.approx(1.0)
        else:
            assert abs(fs.normal @ s.axis) < 1e-9
    # the slice holds the same |E| as the VTA grid (both from the basis): above threshold near the cathode
    fs = s.field_slices["anterior"]
    pts = fs.points().reshape(-1, 3)
    d = np.linalg.norm(pts - c0, axis=1)
    near = (d > 1.0) & (d < 1.5)
    assert np.nanmin(fs.values_V_per_mm.ravel()[near]) > anatomy_run.threshold_V_per_mm
    assert "SceneRay SR1242" in s.title[0] and "VTA" in s.title[2]


@pytest.mark.parametrize("camera", ["anterior", "lateral", "trajectory"])
def test_png_views_with_anatomy(rendering, anatomy_scene, tmp_path, camera):
    info = render.render_png(anatomy_scene, tmp_path / f"{camera}.png", camera=camera, size=(700, 500))
    assert info.path.stat().st_size > 20_000
    img = load_png(info.path)
    assert img.shape == (500, 700, 3)
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 500  # a real picture, not one colour
    # the focus is in the middle of the image
    np.testing.assert_allclose(info.focus_px, (349.5, 249.5), atol=1.5)

    vta = vta_pixels(img)
    sil = vta_silhouette(anatomy_scene, info)
    assert vta.sum() > 1500, f"only {vta.sum()} VTA-coloured pixels"
    assert (vta & sil).sum() / vta.sum() > 0.9, "VTA colour outside the VTA's projection"
    assert vta.sum() > 0.2 * sil.sum()

    cathode = cathode_pixels(img)
    assert cathode.sum() > 30
    rows, cols = np.nonzero(cathode)
    dist = np.hypot(cols - info.contacts_px[0, 0], rows - info.contacts_px[0, 1])
    assert np.median(dist) < 25, "cathode colour away from contact 0"
    if camera != "trajectory":  # the trajectory view cuts across contact 0 only
        assert anode_pixels(img).sum() > 30


def test_scene_without_vta_grid(homogeneous_run):
    """output.nifti = false gives no grid: the scene samples |E| itself, same VTA."""
    import dataclasses

    grid = homogeneous_run.vta_grid
    scene = render.view_from_simulation(dataclasses.replace(homogeneous_run, vta_grid=None))
    assert not scene.vta.touches_border
    # the voxel VTA agrees with the mesh-integrated volume to voxelisation accuracy
    assert scene.vta.volume_mm3 == pytest.approx(homogeneous_run.vta_volume_mm3, rel=0.08)
    assert scene.vta.volume_mm3 == pytest.approx(grid.volume_mm3, rel=0.05)


def test_png_homogeneous_no_anatomy(rendering, homogeneous_run, tmp_path):
    scene = render.view_from_simulation(homogeneous_run)
    assert scene.t1 is None and scene.structures == {} and scene.fibres == []
    assert scene.polarity == ("inactive", "cathode", "inactive", "inactive")
    info = render.render_png(scene, tmp_path / "h.png", camera="lateral", size=(600, 450))
    img = load_png(info.path)
    assert img.shape == (450, 600, 3)
    vta = vta_pixels(img)
    assert vta.sum() > 1000
    assert (vta & vta_silhouette(scene, info)).sum() / vta.sum() > 0.9
    rows, cols = np.nonzero(cathode_pixels(img))
    assert len(rows) > 100
    # contact 1 is the cathode: its colour sits at contact 1's projection, not at the tip
    assert abs(np.median(rows) - info.contacts_px[1, 1]) < 6
    assert abs(np.median(cols) - info.contacts_px[1, 0]) < 6
    # mostly background without anatomy
    bg = np.all(np.abs(img.astype(int) - (12, 15, 20)) < 6, axis=-1)
    assert bg.mean() > 0.5


def test_fibres_coloured_by_activation(rendering, homogeneous_run, tmp_path):
    z = np.linspace(-10, 20, 61)
    near = np.column_stack([np.full_like(z, 1.8), np.zeros_like(z), z])        # passes the cathode
    far = np.column_stack([np.full_like(z, -9.0), np.full_like(z, 2.0), z])    # 9 mm away
    scene = render.view_from_simulation(homogeneous_run, fibres=[near, far], fibre_activation=[True, False])
    assert "axons activated: 1 of 2 simulated" in scene.title
    info = render.render_png(scene, tmp_path / "f.png", camera="anterior", size=(600, 450))
    img = load_png(info.path)
    magenta = fibre_pixels(img)
    magenta[:150, 400:] = False  # the legend's swatch
    rows, cols = np.nonzero(magenta)
    assert len(rows) > 100
    # only the activated fibre is magenta: all magenta pixels lie on its projection
    x_near = info.project(near)[:, 0]
    assert np.all(np.abs(cols - x_near.mean()) < 12)


def test_bad_inputs(homogeneous_run, tmp_path):
    z = np.linspace(0, 5, 6)
    fibre = np.column_stack([z, z, z])
    with pytest.raises(VtaError, match="fibre_activation has 2 values for 1 fibres"):
        render.view_from_simulation(homogeneous_run, fibres=[fibre], fibre_activation=[1, 0])
    with pytest.raises(VtaError, match=r"fibre 0 must be an \(n >= 2, 3\) array"):
        render.view_from_simulation(homogeneous_run, fibres=[np.zeros((4, 2))])
    with pytest.raises(VtaError, match=r"must lie in \[0, 1\]"):
        render.view_from_simulation(homogeneous_run, fibres=[fibre], fibre_activation=[2.0])
    with pytest.raises(VtaError, match="unknown camera 'front'"):
        render.parse_cameras("anterior,front")
    assert render.parse_cameras("lateral, anterior,lateral") == ["lateral", "anterior"]
    assert render.parse_size("800x600") == (800, 600)
    for bad in ("800", "axb", "10x10"):
        with pytest.raises(VtaError, match="image size"):
            render.parse_size(bad)


# --- the command ------------------------------------------------------------------------------


def vta(*args):
    return subprocess.run([sys.executable, "-m", "vta", *args], capture_output=True, text=True)


def test_cli_render_end_to_end(rendering, small_config_path, anatomy_run, tmp_path):
    out = tmp_path / "views"
    proc = vta("render", str(small_config_path), "--out", str(out), "--camera", "anterior,trajectory",
               "--size", "640x480", "-q")
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert names == ["efield_norm.nii.gz", "render_anterior.png", "render_slices.png", "render_trajectory.png",
                     "scene.html", "summary.json", "vta.nii.gz"]   # everything `vta run` writes, plus the views
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(summary["outputs"]) == names
    assert summary["vta_volume_mm3"] == pytest.approx(anatomy_run.vta_volume_mm3, rel=1e-9)
    assert summary["timings_s"]["render"] > 0
    for name in ("render_anterior.png", "render_trajectory.png"):
        img = load_png(out / name)
        assert img.shape == (480, 640, 3) and vta_pixels(img).sum() > 500
    # the planning slices keep their own print layout (not --size)
    assert load_png(out / "render_slices.png").shape == (render.SLICES_SIZE[1], render.SLICES_SIZE[0], 3)
    assert "written to" in proc.stdout


def test_cli_render_errors_leave_nothing(small_config_path, tmp_path):
    out = tmp_path / "never"
    for args, message in ((["--camera", "front"], "unknown camera 'front'"),
                          (["--size", "big"], "image size"),):
        proc = vta("render", str(small_config_path), "--out", str(out), *args)
        assert proc.returncode == 2
        assert proc.stderr.count("\n") == 1 and message in proc.stderr
        assert not out.exists()


# --- the interactive HTML in a real browser --------------------------------------------------


def _chromium():
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    return browser, driver


def test_html_self_contained_in_headless_chromium(rendering, anatomy_scene, tmp_path):
    path = render.render_html(anatomy_scene, tmp_path / "scene.html")
    text = path.read_text(encoding="utf-8")
    assert "OfflineLocalView" in text and "base64Str" in text
    assert "<script src=" not in text and "<link rel=\"stylesheet\"" not in text
    assert "kitware.github.io/vtk-js/icon" not in text

    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install .[test])")
    browser, driver_path = _chromium()
    if not browser or not driver_path:
        pytest.skip("chromium and chromedriver are not installed (scripts/system-deps.sh installs them)")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1000,750",
                "--enable-unsafe-swiftshader", "--use-angle=swiftshader"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    try:
        driver.get(path.as_uri())
        deadline = time.time() + 30
        ready = None
        while time.time() < deadline and not ready:
            ready = driver.execute_script("return document.body.getAttribute('data-vta-ready')")
            time.sleep(0.2)
        assert ready and int(ready) >= 8, "the vtk.js scene did not load"  # lead, VTA, structures, planes
        size = driver.execute_script(
            "const c = document.querySelector('canvas'); return c ? [c.width, c.height] : null")
        assert size and size[0] > 500 and size[1] > 300
        assert driver.execute_script("return document.getElementById('vta-legend') !== null")
        time.sleep(0.5)
        shot = np.asarray(PILImage.open(__import__("io").BytesIO(driver.get_screenshot_as_png())).convert("RGB"))
        assert vta_pixels(shot).sum() > 200, "no VTA colour in the browser rendering"
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
        urls = set()
        for entry in driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                urls.add(message["params"]["request"]["url"])
        assert urls and all(u.startswith(("file:", "data:", "blob:")) for u in urls), urls
    finally:
        driver.quit()
