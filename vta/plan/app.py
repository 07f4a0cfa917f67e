"""`vta plan`: the live targeting app (trame, Vuetify 3, server-side VTK rendering).

Left: the controls (lead model, target preset or tip/entry with ±0.5 mm and ±1°
nudges, rotation; per-contact amplitude and polarity; mode; pulse width; threshold or
fibre diameter; "Save plan"). Right: the 3D view (structures, lead with labelled
contacts, VTA, |E| plane, fibres), three orthogonal slices through the active contacts
with mm coordinates, and the readouts (VTA volume, coverage of NAc/ALIC and the other
structures, spill, impedance, contact currents with charge-density and Shannon
warnings, and the tract activation, computed with the axon models once the edits pause).

A setting change is answered by :class:`vta.plan.live.LiveResponse` within the request
(``last_update_ms`` shows how long it took); a lead move is solved on a worker thread
while the page stays live and shows ``solving``. Every state variable the page shows
is a trame state key (see :func:`build_app`), which the browser test reads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import numpy as np

from ..anatomy.targets import TARGET_PRESETS
from ..errors import VtaError
from ..leads import lead_catalogue
from ..scene import coordinate_spaces
from .session import PlanSession
from .slices_svg import SliceRenderer, background_box_percent
from .view3d import PlanView3D

__all__ = ["build_app", "serve"]

log = logging.getLogger(__name__)

#: Delay (s) between sending a setting's numbers and slices and redrawing the 3D view
#: (software rendering, ~0.1 s, blocks the server loop): the numbers reach the page
#: first, and a burst of edits redraws once.
VIEW_DELAY_S = 0.25


def _fmt(v: float, digits: int = 1) -> str:
    return f"{v:.{digits}f}"


class PlanApp:
    """Binds a :class:`PlanSession` to a trame server."""

    def __init__(self, session: PlanSession, server, save_dir: Path):
        self.session = session
        self.server = server
        self.state, self.ctrl = server.state, server.controller
        self.view = PlanView3D()
        self.slices = SliceRenderer()
        self.save_dir = save_dir
        self._shown_generation = None
        self._shown_confirmed = None
        self._view_pending = False
        self._init_state()

    # ------------------------------------------------------------------ state
    def _init_state(self) -> None:
        s, st = self.session, self.state
        lead = s.scene.lead
        st.lead_models = list(lead_catalogue())
        st.targets = ["(tip/entry)"] + list(TARGET_PRESETS)
        st.lead_model = lead.model.name
        st.target = s.data["lead"].get("target") or "(tip/entry)"
        st.update(self._placement_state(lead.placement))
        stim = s.scene.config.stimulation
        st.mode = stim.mode
        st.pulse_width_us = float(stim.pulse_width_us)
        vta = s.scene.config.vta
        st.threshold_kind = "fibre diameter (um)" if vta.fiber_diameter_um is not None else "threshold (V/mm)"
        st.threshold_value = float(vta.fiber_diameter_um if vta.fiber_diameter_um is not None
                                   else vta.threshold_V_per_mm)
        self._contacts_state()
        st.status = s.status
        st.status_message = s.message
        st.error = ""
        st.vta_volume = "-"
        st.vta_volume_mm3 = None
        st.readouts = []
        st.contact_rows = []
        st.tract_rows = []
        st.warnings = []
        st.last_update_ms = None
        st.exact = False
        st.slice_axial = st.slice_coronal = st.slice_sagittal = st.slice_legend = ""
        st.slice_bg_axial = st.slice_bg_coronal = st.slice_bg_sagittal = ""
        st.save_dir = str(self.save_dir)
        st.saved = ""
        st.caption = ""

    def _placement_state(self, p) -> dict:
        """Tip, entry (40 mm up the trajectory) and rotation of a placement, for the fields."""
        tip = np.asarray(p.tip_mm, float)
        entry = tip + 40.0 * np.asarray(p.direction, float)
        return {**{f"tip_{a}": round(float(v), 2) for a, v in zip("xyz", tip)},
                **{f"entry_{a}": round(float(v), 2) for a, v in zip("xyz", entry)},
                "rotation_deg": round(float(p.rotation_deg), 1)}

    def _contacts_state(self) -> None:
        s, st = self.session, self.state
        amps = s.scene.config.stimulation.contacts
        n = s.scene.lead.model.n_contacts
        st.n_contacts = n
        for k in range(n):
            a = float(amps.get(k, 0.0))
            st[f"amp_{k}"] = abs(a)
            st[f"pol_{k}"] = "-" if a < 0 else "+" if a > 0 else "off"

    def contacts_from_state(self) -> dict[int, float]:
        st, out = self.state, {}
        for k in range(int(st.n_contacts)):
            pol, amp = st[f"pol_{k}"], float(st[f"amp_{k}"] or 0.0)
            if pol != "off" and amp:
                out[k] = -amp if pol == "-" else amp
        return out

    # ------------------------------------------------------------------ updates
    def push(self) -> None:
        """Show the session's current result: numbers and slices, then the 3D view."""
        if self.push_numbers():
            self.refresh_view()

    def push_numbers(self) -> bool:
        """Readouts, slices, status (cheap: the live answer of a setting); False while
        there is nothing to show yet."""
        s, st = self.session, self.state
        live, result, sim, st.status, st.status_message = s.snapshot()
        st.error = s.error or ""
        if live is None or result is None:
            return False
        if self._shown_generation is not live:
            st.update(self._placement_state(live.scene.lead.placement))
        svgs = self.slices.render(live, result, embed_background=False)
        st.slice_axial, st.slice_coronal, st.slice_sagittal = svgs["axial"], svgs["coronal"], svgs["sagittal"]
        for plane, uri in self.slices.backgrounds(live, result).items():
            if st[f"slice_bg_{plane}"] != uri:  # sent again only when it changes
                st[f"slice_bg_{plane}"] = uri
        legend = self.slices.legend_html(live)
        if st.slice_legend != legend:
            st.slice_legend = legend
        self._readouts(live, result)
        st.exact = sim is not None
        if sim is not None and sim is not self._shown_confirmed:
            st.tract_rows = []
            for r in sim.tracts:
                info = r.summary(s.scene.config.tracts)
                st.tract_rows.append({"tract": r.placed.name, "activated": info["n_activated"],
                                      "of fibres": info["n_fibres"],
                                      "percent": round(100 * info["fraction_activated"], 1),
                                      "axon model": f"{info['axon_model']} {info['fiber_diameter_um']:g} um"})
            st.warnings = list(dict.fromkeys(list(st.warnings) + list(sim.warnings)))
        return True

    def refresh_view(self) -> None:
        """Redraw the 3D view for the session's current scene, result and tract activation and
        send the new image (software rendering: ~0.1 s)."""
        self._view_pending = False
        live, result, sim, _, _ = self.session.snapshot()
        if live is None or result is None:
            return
        t0 = time.perf_counter()
        if self._shown_generation is not live:
            self.view.set_scene(live, result)
            self._shown_generation = live
        else:
            self.view.update(result)
        if sim is not None and sim is not self._shown_confirmed:
            self._shown_confirmed = sim
            self.view.show_fibres(sim)
        self.ctrl.view_update()
        log.debug("3D view refreshed in %.0f ms", 1000 * (time.perf_counter() - t0))

    def schedule_view(self) -> None:
        """Refresh the 3D view after the numbers have gone out (one pending refresh at a
        time: a burst of edits redraws once, with the last setting)."""
        if self._view_pending:
            return
        self._view_pending = True

        def run() -> None:
            with self.state:
                self.refresh_view()

        asyncio.get_event_loop().call_later(VIEW_DELAY_S, run)

    def _readouts(self, live, result) -> None:
        st = self.state
        scene = live.scene
        st.vta_volume_mm3 = result.vta_volume_mm3
        st.vta_volume = f"{result.vta_volume_mm3:.2f}"
        rows = [{"structure": name, "overlap_mm3": round(v["overlap_mm3"], 1), "percent": round(100 * v["fraction"], 1)}
                for name, v in result.structures.items() if v["overlap_mm3"] > 0 or name in live.targets]
        rows.sort(key=lambda r: (r["structure"] not in live.targets, -r["overlap_mm3"]))
        rows.append({"structure": "spill (outside targets)", "overlap_mm3": round(result.spill_mm3, 1), "percent": None})
        st.readouts = rows
        unit = "mA" if result.setting.mode == "current" else "V"
        st.contact_rows = [{"contact": r["label"], "setting": "" if r["amplitude"] is None else f"{r['amplitude']:+g} {unit}",
                            "current_mA": round(r["current_mA"], 3), "density": round(r["charge_density_uC_per_cm2"], 2),
                            "flags": ", ".join(f for f, on in (("> 30 uC/cm2", r["exceeds_30uC_cm2"]),
                                                                ("Shannon", r["exceeds_shannon"])) if on)}
                           for r in result.contacts]
        warnings = []
        for r in result.contacts:
            if r["exceeds_shannon"] or r["exceeds_30uC_cm2"]:
                warnings.append(f"{r['label']}: charge density {r['charge_density_uC_per_cm2']:.1f} uC/cm2 "
                                f"exceeds the {'Shannon (1992) limit' if r['exceeds_shannon'] else '30 uC/cm2 limit'}")
        if result.clipped_by_domain:
            warnings.append("the VTA reaches the model domain's boundary: volumes are cut off")
        if result.grid_touched:
            warnings.append("the VTA reaches the edge of the planning grid: the 3D surface is cut off there "
                            "(volume and coverage are not)")
        st.warnings = warnings
        st.impedance = f"{result.impedance_ohm:.0f}"
        st.return_text = "case +" if scene.domain.outer_grounded else "no case return (bipolar)"
        p = scene.lead.placement
        centre = live.active_centre_mm(result.state)
        spaces = coordinate_spaces(scene.config)
        space = {"mni": "MNI mm", "native": "native mm", "scrf": "scrf mm"}.get(spaces["outputs"], "mm")
        template = (f"; template anatomy ({spaces['template']}), not patient MRI" if spaces["template"] else "")
        st.caption = (f"tip ({', '.join(_fmt(v) for v in p.tip_mm)}), active centre "
                      f"({', '.join(_fmt(v) for v in centre)}) {space}{template}")
        st.last_update_ms = round(1000 * result.elapsed_s, 1)

    # ------------------------------------------------------------------ handlers
    def on_setting(self, **_) -> None:
        st = self.state
        try:
            kwargs = {"contacts": self.contacts_from_state(), "mode": st.mode,
                      "pulse_width_us": float(st.pulse_width_us)}
            if st.threshold_kind.startswith("fibre"):
                kwargs["fiber_diameter_um"] = float(st.threshold_value)
            else:
                kwargs["threshold_V_per_mm"] = float(st.threshold_value)
            t0 = time.perf_counter()
            self.session.set_setting(**kwargs)
            st.error = ""
        except (VtaError, ValueError, TypeError) as exc:
            st.error = str(exc)
            return
        self.push_numbers()
        st.last_update_ms = round(1000 * (time.perf_counter() - t0), 1)
        st.flush()
        self.schedule_view()

    def on_lead(self, **changes) -> None:
        try:
            self.session.move_lead(**changes)
            self.state.error = ""
        except VtaError as exc:
            self.state.error = str(exc)
        self.state.status, self.state.status_message = self.session.status, self.session.message

    def on_nudge(self, what: str, step: float) -> None:
        axis = {"x": 0, "y": 1, "z": 2}
        try:
            if what in axis:
                shift = [0.0, 0.0, 0.0]
                shift[axis[what]] = step
                self.session.nudge(shift_mm=tuple(shift))
            elif what == "depth":
                self.session.nudge(depth_mm=step)
            elif what == "tilt_x":
                self.session.nudge(tilt_deg=(step, 0.0))
            elif what == "tilt_y":
                self.session.nudge(tilt_deg=(0.0, step))
            elif what == "rotate":
                self.session.nudge(rotate_deg=step)
            self.state.error = ""
        except VtaError as exc:
            self.state.error = str(exc)
        self.state.status, self.state.status_message = self.session.status, self.session.message

    def on_apply_placement(self) -> None:
        st = self.state
        if st.target and st.target != "(tip/entry)":
            self.on_lead(target=st.target, rotation_deg=float(st.rotation_deg), model=st.lead_model)
        else:
            self.on_lead(tip_mm=[float(st[f"tip_{a}"]) for a in "xyz"],
                         entry_mm=[float(st[f"entry_{a}"]) for a in "xyz"],
                         rotation_deg=float(st.rotation_deg), model=st.lead_model)

    async def on_save(self) -> None:
        st = self.state
        folder = Path(st.save_dir).expanduser()
        st.saved = f"saving to {folder} ..."
        st.flush()
        try:
            summary = await asyncio.to_thread(self.session.save, folder)
            st.saved = f"saved: {folder} (VTA {summary['vta_volume_mm3']:.2f} mm3)"
        except VtaError as exc:
            st.saved = f"not saved: {exc}"
        st.flush()


def build_app(session: PlanSession, server=None, save_dir: str | Path = "plan_out"):
    """The trame server of a session (not started). Returns ``(server, app)``."""
    from trame.app import get_server
    from trame.ui.vuetify3 import SinglePageWithDrawerLayout
    from trame.widgets import html, vtk as vtk_widgets, vuetify3 as v3

    server = server or get_server(f"vta-plan-{id(session)}", client_type="vue3")
    app = PlanApp(session, server, Path(save_dir))
    st, ctrl = server.state, server.controller

    def when_changed(*names):
        def decorate(fn):
            st.change(*names)(lambda **kw: fn())
            return fn
        return decorate

    setting_keys = ["mode", "pulse_width_us", "threshold_kind", "threshold_value"]
    for k in range(session.scene.lead.model.n_contacts):
        setting_keys += [f"amp_{k}", f"pol_{k}"]
    when_changed(*setting_keys)(app.on_setting)
    ctrl.nudge = app.on_nudge
    ctrl.apply_placement = app.on_apply_placement
    ctrl.save = app.on_save

    with SinglePageWithDrawerLayout(server, full_height=True) as layout:
        layout.title.set_text("vta plan")
        with layout.toolbar:
            v3.VSpacer()
            v3.VChip("{{ status_message }}", id="status", color=("status === 'ready' ? 'green' : "
                                                                 "status === 'error' ? 'red' : 'orange'",),
                     classes="mr-2")
            v3.VProgressCircular(indeterminate=True, v_if="status === 'solving'", size=20, classes="mr-4")
            html.Span("VTA {{ vta_volume }} mm³", id="vta-volume", classes="mr-2 text-h6")
            html.Span("{{ exact ? '' : '(tracts updating)' }}", id="exact", classes="mr-4 text-caption")
            html.Span("{{ last_update_ms }} ms", id="latency", classes="text-caption mr-2")
        with layout.drawer as drawer:
            drawer.width = 380
            with v3.VContainer(classes="pa-2"):
                html.Div("Lead", classes="text-subtitle-1")
                v3.VSelect(label="model", v_model=("lead_model",), items=("lead_models",), density="compact",
                           id="lead-model")
                v3.VSelect(label="target preset", v_model=("target",), items=("targets",), density="compact")
                with v3.VRow(dense=True):
                    for a in "xyz":
                        with v3.VCol(cols=4):
                            v3.VTextField(label=f"tip {a} (mm)", v_model=(f"tip_{a}",), type="number",
                                          density="compact", id=f"tip-{a}", hide_details=True)
                with v3.VRow(dense=True):
                    for a in "xyz":
                        with v3.VCol(cols=4):
                            v3.VTextField(label=f"entry {a} (mm)", v_model=(f"entry_{a}",), type="number",
                                          density="compact", hide_details=True)
                v3.VTextField(label="rotation (deg)", v_model=("rotation_deg",), type="number", density="compact",
                              hide_details=True)
                v3.VBtn("apply lead", click=ctrl.apply_placement, size="small", id="apply-lead", classes="my-1")
                with html.Div(classes="d-flex flex-wrap"):
                    for what, step, text in (("x", -0.5, "x −0.5"), ("x", 0.5, "x +0.5"), ("y", -0.5, "y −0.5"),
                                             ("y", 0.5, "y +0.5"), ("z", -0.5, "z −0.5"), ("z", 0.5, "z +0.5"),
                                             ("depth", 0.5, "deeper 0.5"), ("depth", -0.5, "back 0.5"),
                                             ("tilt_x", 1.0, "tilt x +1°"), ("tilt_x", -1.0, "tilt x −1°"),
                                             ("tilt_y", 1.0, "tilt y +1°"), ("tilt_y", -1.0, "tilt y −1°"),
                                             ("rotate", 15.0, "rot +15°"), ("rotate", -15.0, "rot −15°")):
                        v3.VBtn(text, size="x-small", classes="ma-1", click=(ctrl.nudge, f"['{what}', {step}]"),
                                id=f"nudge-{what}-{'p' if step > 0 else 'm'}", disabled=("status === 'solving'",))
                html.Div("Stimulation", classes="text-subtitle-1 mt-2")
                v3.VSelect(label="mode", v_model=("mode",), items=("['current', 'voltage']",), density="compact")
                for k in range(session.scene.lead.model.n_contacts):
                    with v3.VRow(dense=True, align="center"):
                        with v3.VCol(cols=3):
                            html.Span(f"C{k}")
                        with v3.VCol(cols=4):
                            v3.VSelect(v_model=(f"pol_{k}",), items=("['-', 'off', '+']",), density="compact",
                                       hide_details=True, id=f"pol-{k}")
                        with v3.VCol(cols=5):
                            v3.VTextField(v_model_number=(f"amp_{k}",), type="number", step=0.1, min=0,
                                          density="compact", hide_details=True, id=f"amp-{k}",
                                          suffix=("mode === 'current' ? 'mA' : 'V'",))
                v3.VTextField(label="pulse width (us)", v_model_number=("pulse_width_us",), type="number",
                              density="compact", hide_details=True, classes="mt-2")
                v3.VSelect(label="activation", v_model=("threshold_kind",),
                           items=("['threshold (V/mm)', 'fibre diameter (um)']",), density="compact",
                           hide_details=True, classes="mt-2")
                v3.VTextField(label="value", v_model_number=("threshold_value",), type="number", step=0.05,
                              density="compact", hide_details=True)
                html.Div("Save", classes="text-subtitle-1 mt-3")
                v3.VTextField(label="folder", v_model=("save_dir",), density="compact", hide_details=True,
                              id="save-dir")
                v3.VBtn("save plan", click=ctrl.save, size="small", id="save", classes="my-1")
                html.Div("{{ saved }}", id="saved", classes="text-caption")
                html.Div("{{ error }}", id="error", classes="text-caption text-red")
        with layout.content:
            with v3.VContainer(fluid=True, classes="pa-1"):
                with v3.VRow(dense=True):
                    with v3.VCol(cols=7):
                        with html.Div(style="height: 480px; position: relative"):
                            view = vtk_widgets.VtkRemoteView(app.view.render_window, interactive_ratio=1,
                                                             still_quality=90)
                            ctrl.view_update = view.update
                        html.Div("{{ caption }}", classes="text-caption", id="caption")
                        html.Div("{{ return_text }}; impedance {{ impedance }} ohm", classes="text-caption")
                    with v3.VCol(cols=5):
                        v3.VDataTable(headers=("[{title: 'structure', key: 'structure'}, {title: 'mm³', key: "
                                               "'overlap_mm3'}, {title: '%', key: 'percent'}]",),
                                      items=("readouts",), density="compact", items_per_page=-1, hide_default_footer=True,
                                      id="coverage")
                        v3.VDataTable(items=("contact_rows",), density="compact", items_per_page=-1,
                                      hide_default_footer=True)
                        v3.VDataTable(items=("tract_rows",), density="compact", items_per_page=-1,
                                      hide_default_footer=True, v_if="tract_rows.length")
                        with html.Div(v_for="w in warnings", classes="text-caption text-orange"):
                            html.Span("⚠ {{ w }}")
                html.Div(v_html=("slice_legend",), classes="text-caption")
                with v3.VRow(dense=True):
                    left, top, size = background_box_percent()
                    for plane in ("axial", "coronal", "sagittal"):
                        with v3.VCol(cols=4):
                            with html.Div(style="position: relative; background: #0c0f14", id=f"slice-{plane}"):
                                html.Img(src=(f"slice_bg_{plane}",), v_if=f"slice_bg_{plane}",
                                         style=f"position: absolute; left: {left:.3f}%; top: {top:.3f}%; "
                                               f"width: {size:.3f}%; aspect-ratio: 1")
                                html.Div(v_html=(f"slice_{plane}",), style="position: relative")
    if session.status == "ready":
        app.push()

    def poll() -> None:
        """Pick up background results (lead solves, tract activations) on the server
        loop: the numbers first, then the 3D view (a failure there is logged and does
        not hold the numbers back)."""
        live, _, confirmed, status, message = app.session.snapshot()
        if (live is not app._shown_generation or (confirmed is not None and confirmed is not app._shown_confirmed)
                or st.status != status or st.status_message != message):
            with st:
                app.push_numbers()
            try:
                with st:
                    app.refresh_view()
            except Exception:
                app._shown_generation, app._shown_confirmed = live, confirmed  # do not retry every tick
                log.exception("the 3D view could not be redrawn")

    @ctrl.add("on_server_ready")
    def start_polling(**_):
        async def loop():
            while True:
                try:
                    poll()
                except Exception:  # keep the page alive; the error is logged
                    log.exception("refreshing the plan view failed")
                await asyncio.sleep(0.1)
        asyncio.get_event_loop().create_task(loop())

    return server, app


def serve(session: PlanSession, port: int = 8080, host: str = "localhost", open_browser: bool = True,
          save_dir: str | Path = "plan_out") -> None:
    """Serve a session's app on ``http://host:port`` and block until stopped (Ctrl-C)."""
    server, _ = build_app(session, save_dir=save_dir)
    log.info("vta plan on http://%s:%d", host, port)
    try:
        server.start(port=port, host=host, open_browser=open_browser, show_connection_info=False)
    finally:
        session.close()
