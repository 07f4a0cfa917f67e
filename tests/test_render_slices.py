"""The planning figure (axial/coronal/sagittal slices through the active contacts) and
the contact labels of the 3D views: real simulations and real renders, no mocks."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from test_render import SMALL_ANATOMY  # the same small anatomy case

from vta.errors import VtaError
from vta.scene import Scene
from vta.views.slice_data import sample_panels
from vta.views.slices import SLICES_SIZE, TEMPLATE_NOTE, render_slices
from vta.views.view_scene import active_centre_mm, view_from_simulation

ROOT = Path(__file__).resolve().parents[1]
HOMOGENEOUS = ROOT / "examples" / "homogeneous_3389.toml"
DIRECTIONAL = ROOT / "examples" / "directional_vercise.toml"

@pytest.fixture(scope="module")
def homogeneous_run():
    return Scene.from_toml(HOMOGENEOUS).simulate()


@pytest.fixture(scope="module")
def anatomy_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "small.toml"
    path.write_text(SMALL_ANATOMY)
    return Scene.from_toml(path).simulate()


@pytest.fixture(scope="module")
def anatomy_view(anatomy_run):
    return view_from_simulation(anatomy_run)


@pytest.fixture(scope="module")
def anatomy_figure(anatomy_run, anatomy_view, tmp_path_factory):
    return render_slices(anatomy_run, tmp_path_factory.mktemp("slices") / "render_slices.png", view=anatomy_view)


def _planes_through(fig, centre, tol):
    for name, plane in fig.planes.items():
        assert plane.coordinate_mm == pytest.approx(centre[plane.normal_axis], abs=tol), name
        # the panel's mm axes are centred on the contact centre
        assert 0.5 * sum(plane.h_range_mm) == pytest.approx(centre[plane.h_axis], abs=tol)
        assert 0.5 * sum(plane.v_range_mm) == pytest.approx(centre[plane.v_axis], abs=tol)
        assert np.all(np.diff(plane.h_mm) > 0) and np.all(np.diff(plane.v_mm) > 0)


def test_homogeneous_slices(homogeneous_run, tmp_path):
    fig = render_slices(homogeneous_run, tmp_path / "render_slices.png")
    img = np.asarray(PILImage.open(fig.path).convert("RGB"))
    assert img.shape == (SLICES_SIZE[1], SLICES_SIZE[0], 3) and fig.size == SLICES_SIZE
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 200

    # contact 1 carries all the current: every plane passes through its centre
    lead = homogeneous_run.scene.lead
    c1 = lead.placement.contact_center_mm(lead.model, 1)
    np.testing.assert_allclose(fig.centre_mm, c1, atol=1e-9)
    _planes_through(fig, c1, homogeneous_run.vta_grid.grid.spacing_mm)
    assert fig.planes["axial"].coordinate_mm == pytest.approx(4.25)
    # the axial plane cuts contact 1 only; the coronal plane holds the whole (vertical) lead
    assert fig.cut_contacts["axial"] == [1]
    assert fig.cut_contacts["coronal"] == [0, 1, 2, 3]

    for name in ("axial", "coronal", "sagittal"):
        assert sorted(fig.contact_labels[name]) == ["C0", "C1 −1.0 mA", "C2", "C3"]
    text = "\n".join(fig.caption)
    assert "tip (0.0, 0.0, 0.0)" in text and "(0.0, 0.0, +4.2)" in text
    assert "Medtronic 3389" in text and "C1 −1.0 mA, case +" in text and "VTA 9.7 mm³" in text
    assert TEMPLATE_NOTE not in text and "No anatomy" in text
    assert fig.structures == []
    # no anatomy: no anatomical orientation letters, the world axes instead
    assert fig.planes["axial"].edge_letters == ("−x", "+x", "+y", "−y")


def test_default_anatomy_slices(anatomy_run, anatomy_figure):
    fig = anatomy_figure
    assert fig.path.is_file()
    assert PILImage.open(fig.path).size == SLICES_SIZE

    # the current-weighted centre of the two active contacts (voltage mode: |I| weights)
    lead = anatomy_run.scene.lead
    i = np.abs(anatomy_run.state.currents_mA[:2])
    c = [lead.placement.contact_center_mm(lead.model, k) for k in (0, 1)]
    expected = (i[0] * c[0] + i[1] * c[1]) / i.sum()
    np.testing.assert_allclose(fig.centre_mm, expected, atol=1e-9)
    np.testing.assert_allclose(active_centre_mm(anatomy_run), expected, atol=1e-9)
    _planes_through(fig, expected, anatomy_run.vta_grid.grid.spacing_mm)

    text = "\n".join(fig.caption)
    assert TEMPLATE_NOTE in text and "(mm, MNI)" in text
    tip = lead.placement.tip_mm
    assert "tip (" + ", ".join(f"{v:+.1f}".replace("-", "−") for v in tip) + ")" in text
    assert "C0 −3.0 V" in text and "C1 +1.0 V" in text and "SceneRay SR1242" in text
    assert "Neurological convention" in text
    assert {"NAc", "ALIC"} <= set(fig.structures)
    labels = fig.contact_labels["coronal"]
    assert "C0 −3.0 V" in labels and "C1 +1.0 V" in labels and "C2" in labels
    # neurological convention: patient's left on the left, anterior up (axial), superior up
    assert fig.planes["axial"].edge_letters == ("L", "R", "A", "P")
    assert fig.planes["coronal"].edge_letters == ("L", "R", "S", "I")
    assert fig.planes["sagittal"].edge_letters == ("P", "A", "S", "I")
    assert fig.field_levels_V_per_mm and anatomy_run.threshold_V_per_mm not in fig.field_levels_V_per_mm


def test_anatomy_lands_where_mni_puts_it(anatomy_run, anatomy_view, anatomy_figure):
    """The right NAc is drawn right of the midline (x > 0 on the image's right side),
    the ALIC above and lateral to it."""
    data = sample_panels(anatomy_run, anatomy_view, anatomy_figure.planes)
    cor = anatomy_figure.planes["coronal"]
    d = data["coronal"]
    assert d.t1 is not None and d.structures
    h, v = np.meshgrid(cor.h_mm, cor.v_mm)

    def centroid(name):
        m = d.structures[name] >= 0.5
        return h[m].mean(), v[m].mean()

    nac_x, nac_z = centroid("NAc_R")
    alic_x, alic_z = centroid("ALIC_R")
    assert 5.0 < nac_x < 16.0 and -14.0 < nac_z < -2.0
    assert alic_x > nac_x and alic_z > nac_z


def test_directional_labels(tmp_path):
    sim = Scene.from_toml(DIRECTIONAL).simulate()
    fig = render_slices(sim, tmp_path / "s.png", size=(900, 552))
    assert PILImage.open(fig.path).size == (900, 552)
    centre = sim.scene.lead.placement.contact_center_mm(sim.scene.lead.model, 2)
    _planes_through(fig, centre, sim.vta_grid.grid.spacing_mm)
    # the axial plane through segment C2 cuts its level (C1, C2, C3)
    assert fig.cut_contacts["axial"] == [1, 2, 3]
    assert "C2 −2.0 mA" in fig.contact_labels["axial"] and len(fig.contact_labels["axial"]) == 8
    assert "entry (+25.0, +30.0, +50.0)" in "\n".join(fig.caption)  # the configured entry point


def test_3d_views_have_contact_labels_and_coordinates(homogeneous_run, tmp_path):
    render = pytest.importorskip("vta.views.render")
    try:
        render.check_rendering()
    except VtaError as exc:
        pytest.skip(f"no offscreen OpenGL here: {exc}")
    scene = render.view_from_simulation(homogeneous_run)
    assert scene.contact_labels == ("C0", "C1 −1.0 mA", "C2", "C3")
    assert scene.coordinates[0] == "tip (0.0, 0.0, 0.0) mm"
    assert scene.coordinates[1] == "active C1 (0.0, 0.0, +4.2) mm"
    size = (600, 450)
    info = render.render_png(scene, tmp_path / "with.png", camera="lateral", size=size)
    render.render_png(dataclasses.replace(scene, contact_labels=(), coordinates=[]), tmp_path / "without.png",
                      camera="lateral", size=size)
    a = np.asarray(PILImage.open(tmp_path / "with.png").convert("RGB")).astype(int)
    b = np.asarray(PILImage.open(tmp_path / "without.png").convert("RGB")).astype(int)
    changed = np.any(np.abs(a - b) > 40, axis=-1)
    # the labels sit in a column beside the lead, level with the contacts
    rows = info.contacts_px[:, 1]
    x_lead = info.contacts_px[:, 0].max()
    band = changed[int(rows.min()) - 12:int(rows.max()) + 12, int(x_lead) + 5:]
    assert band.sum() > 300
    # the coordinate notes at the bottom left
    assert changed[-80:, :300].sum() > 100
