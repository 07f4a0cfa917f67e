"""The `vta` command.

``vta run CONFIG.toml --out DIR``   simulate one setting, write summary.json + NIfTI
``vta leads [--json] [--picture MODEL --out FILE.png]``  the lead catalogue and its geometry
``vta demo --out DIR``              run the bundled demo configuration
``vta sweep CONFIG.toml --out DIR``  sweep contacts, amplitudes, pulse widths (no re-solve)
``vta optimise CONFIG.toml --out DIR``  rank settings by target coverage within limits
``vta batch MANIFEST --template BASE.toml --out DIR [--scheduler ADDR]``  a cohort on Dask
``vta render CONFIG.toml --out DIR [--camera a,b] [--no-html] [--size WxH]``  3D targeting views
``vta group BATCH_DIR --outcome COL [--covariate COL ...] [--scheduler ADDR]``  sweet spots, fibres, prediction

Bad input (and any OS error: a full disk, a missing permission) prints one line
``vta: error: ...`` on stderr and exits with status 2. Warnings about a result go to
stderr and into summary.json (``warnings``); with ``--strict`` (run, render, demo) any
warning makes the exit status 3, the outputs being written all the same. Ctrl-C
(SIGINT) exits with 130 and SIGTERM with 143, leaving no partial output.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from importlib import resources

from . import __version__
from .errors import Terminated, VtaError
from .notices import NOT_ABOUT_RESULT, collecting

log = logging.getLogger("vta")

EXIT_BAD_INPUT = 2
EXIT_SUBJECTS_FAILED = 1  # vta batch: some subjects failed (the rest was written)
EXIT_WARNINGS = 3         # --strict: the run finished with warnings
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


def _exit_status(summary: dict, args: argparse.Namespace) -> int:
    """0, or :data:`EXIT_WARNINGS` for a run with warnings under ``--strict``."""
    if getattr(args, "strict", False) and summary.get("warnings"):
        sys.stderr.write(f"vta: {len(summary['warnings'])} warning(s) and --strict: exit status {EXIT_WARNINGS}\n")
        return EXIT_WARNINGS
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from .outputs import run
    from .scene import Scene

    with collecting():  # warnings of resolving the configuration belong to the run too
        scene = Scene.from_toml(args.config)
        summary = run(scene, args.out, progress=not args.quiet)
    _report(summary, args.out)
    return _exit_status(summary, args)


def _cmd_demo(args: argparse.Namespace) -> int:
    import tomllib

    from .outputs import run
    from .scene import Scene

    text = resources.files("vta").joinpath("data/demo.toml").read_text(encoding="utf-8")
    with collecting():
        scene = Scene.from_dict(tomllib.loads(text), "vta/data/demo.toml")
        extra = None
        if not args.no_render:
            from .views.render import CAMERAS, check_rendering, views_writer

            try:
                check_rendering()
                extra = views_writer(list(CAMERAS), (1400, 1000), True)
            except VtaError as exc:  # the numbers do not need a picture
                log.warning("no views rendered: %s", exc, extra=NOT_ABOUT_RESULT)
        summary = run(scene, args.out, progress=not args.quiet, extra=extra)
    _report(summary, args.out)
    return _exit_status(summary, args)


def _cmd_plan(args: argparse.Namespace) -> int:
    import tomllib

    try:
        from .plan.app import serve
    except ImportError as exc:
        raise VtaError(f"vta plan needs the web app packages ({exc.name}): pip install 'vta[plan]'") from None
    from .plan.session import PlanSession

    for name in ("trame_server", "trame_client", "wslink", "aiohttp"):  # their INFO lines are per request
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().getEffectiveLevel()))
    if args.config is None:
        text = resources.files("vta").joinpath("data/demo.toml").read_text(encoding="utf-8")
        session = PlanSession(tomllib.loads(text), "vta/data/demo.toml")
    else:
        session = PlanSession.from_toml(args.config)
    serve(session, port=args.port, host=args.host, open_browser=not args.no_browser, save_dir=args.save_dir)
    return 0


def _cmd_warmup(args: argparse.Namespace) -> int:
    from .warmup import warm_up

    t0 = time.perf_counter()
    timings = warm_up()
    for name, seconds in timings.items():
        print(f"  {name}: {seconds:.1f} s")
    print(f"warm-up done in {time.perf_counter() - t0:.1f} s: kernels compiled and cached, default anatomy built")
    return 0


def _config_kinds(text: str) -> list[str]:
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    if not kinds:
        raise VtaError("the --configs list is empty")
    return kinds


def _check_spacing(spacing: float | None) -> None:
    """``--spacing`` is accepted for old scripts and ignored: VTA volumes are integrated
    on the mesh (as in `vta run`), not counted on a voxel grid."""
    if spacing is not None:
        log.warning("--spacing is ignored: sweep and optimisation VTA volumes are integrated on the mesh, "
                    "as in vta run")


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .io import OutputTransaction, write_table
    from .scene import Scene
    from .studies.sweep import SweepSpec, parse_amplitudes, parse_pulse_widths, plot_coverage, standard_configs, sweep_scene

    amplitudes = parse_amplitudes(args.amplitudes)
    kinds = _config_kinds(args.configs)
    _check_spacing(args.spacing)
    scene = Scene.from_toml(args.config)
    stim = scene.config.stimulation
    pulse_widths = parse_pulse_widths(args.pulse_widths) if args.pulse_widths else [stim.pulse_width_us]
    spec = SweepSpec(standard_configs(scene.lead.model, kinds, stim.mode), amplitudes, pulse_widths,
                     stim.mode)
    rows = sweep_scene(scene, spec, time_domain=not args.quasi_static)
    with OutputTransaction(args.out, kind="sweep") as tx:
        write_table(rows, tx.path("sweep.csv"))
        written = ["sweep.csv"]
        for name in scene.default_targets:
            plot_coverage(rows, name, tx.path(f"coverage_{name}.png"))
            written.append(f"coverage_{name}.png")
    n30 = sum(r["exceeds_30uC_cm2"] for r in rows)
    nsh = sum(r["exceeds_shannon"] for r in rows)
    sys.stdout.write(f"{len(rows)} settings ({len(spec.configs)} configurations); {n30} above 30 uC/cm^2, "
                     f"{nsh} above the Shannon limit\nwritten to {args.out}/: {', '.join(written)}\n")
    return 0


def _name_values(items: list[str] | None, option: str) -> dict[str, float]:
    """``["ALIC_R:50", ...]`` -> ``{"ALIC_R": 50.0}``."""
    out = {}
    for item in items or []:
        name, sep, value = item.rpartition(":")
        try:
            if not sep or not name:
                raise ValueError
            out[name] = float(value)
        except ValueError:
            raise VtaError(f"{option} expects NAME:VALUE, got {item!r}") from None
    return out


def _cmd_optimise(args: argparse.Namespace) -> int:
    from .io import OutputTransaction, write_table
    from .scene import Scene
    from .studies.optimise import Limits, optimise_scene
    from .studies.sweep import parse_pulse_widths, standard_configs

    kinds = _config_kinds(args.configs)
    _check_spacing(args.spacing)
    avoid = _name_values(args.avoid, "--avoid")
    avoid_tracts = _name_values(args.max_tract, "--max-tract")
    scene = Scene.from_toml(args.config)
    if scene.anatomy is None:
        raise VtaError("optimisation needs an [anatomy] with target structures")
    stim = scene.config.stimulation
    pulse_widths = parse_pulse_widths(args.pulse_widths) if args.pulse_widths else [stim.pulse_width_us]
    limits = Limits(max_spill_mm3=args.max_spill, max_overlap_mm3=avoid, max_tract_fraction=avoid_tracts,
                    max_charge_density_uC_per_cm2=args.max_charge_density,
                    shannon_k=None if args.no_shannon else Limits().shannon_k, max_amplitude=args.max_amplitude)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()] if args.targets else None
    configs = standard_configs(scene.lead.model, kinds, stim.mode)
    rows = optimise_scene(scene, configs, limits, targets=targets, pulse_widths_us=pulse_widths,
                          resolution=args.resolution, top=args.top)
    with OutputTransaction(args.out, kind="optimise") as tx:
        write_table(rows, tx.path("ranked.csv"))
    chosen = targets or scene.default_targets[:1]
    unit = "mA" if stim.mode == "current" else "V"
    lines = [f"best settings for {'+'.join(chosen)} ({len(configs)} configurations x {len(pulse_widths)} pulse widths):"]
    for r in rows[:5]:
        lines.append(f"  {r['rank']:>2}. {r['active_contacts']:<12} {r['amplitude']:6.2f} {unit} {r['pulse_width_us']:5.0f} us"
                     f"  coverage {100 * r['target_coverage']:5.1f} %  spill {r['spill_mm3']:7.1f} mm^3"
                     f"  ({'limited by ' + r['limited_by'] if r['feasible'] else 'INFEASIBLE: ' + r['limited_by']})")
    lines.append(f"written to {args.out}/ranked.csv")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _report(summary: dict, out: str) -> None:
    t = summary["timings_s"]
    lines = [
        f"VTA {summary['vta_volume_mm3']:.2f} mm^3 at {summary['threshold_V_per_mm']:.3g} V/mm",
        f"impedance {summary['impedance_ohm']:.1f} ohm",
        f"mesh {summary['mesh']['kind']} P{summary['mesh']['order']}: {summary['mesh']['dofs']} DOFs",
        *(
            f"{name}: {v['overlap_mm3']:.1f} mm^3 of VTA ({100 * v['fraction']:.1f} % of the structure)"
            for name, v in summary["structures"].items()
            if v["overlap_mm3"] > 0
        ),
        *(
            f"tract {name}: {v['n_activated']} of {v['n_fibres']} fibres activated "
            f"({100 * v['fraction_activated']:.1f} %, {v['axon_model'].upper()} {v['fiber_diameter_um']:g} um)"
            for name, v in summary.get("tracts", {}).items()
        ),
        *(f"WARNING: {w}" for w in summary.get("warnings", [])),
        f"time {t['total']:.2f} s",
        f"written to {out}/: {', '.join(summary.get('outputs', ['summary.json']))}",
    ]
    sys.stdout.write("\n".join(lines) + "\n")


def _cmd_batch(args: argparse.Namespace) -> int:
    from .studies.batch import run_batch

    if args.workers is not None and args.workers < 1:
        raise VtaError(f"--workers must be >= 1, got {args.workers}")
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise VtaError("vta batch needs Dask: pip install 'vta[batch]'") from None
    if args.verbose < 2:  # Dask's own INFO lines only with -vv (set after its import configures them)
        logging.getLogger("distributed").setLevel(logging.WARNING)
    result = run_batch(args.manifest, args.out, template=args.template, scheduler=args.scheduler,
                       n_workers=args.workers, progress=not args.quiet)
    sys.stdout.write(result.summary_line() + f"; group files in {args.out}/\n")
    return 0 if result.ok else EXIT_SUBJECTS_FAILED


def _cmd_group(args: argparse.Namespace) -> int:
    from .cohort.run import run_group

    if args.scheduler is not None or args.workers is not None:
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise VtaError("vta group on Dask needs distributed: pip install 'vta[batch]'") from None
        if args.verbose < 2:  # Dask's own INFO lines only with -vv
            logging.getLogger("distributed").setLevel(logging.WARNING)
    result = run_group(args.batch_dir, args.outcome, covariates=args.covariate or (), outcomes_csv=args.outcomes,
                       unit=args.unit, mirror=args.mirror, test=args.test, min_n=args.min_n,
                       permutations=args.permutations, alpha=args.alpha, folds=args.folds, tract=args.tract,
                       fibre_min_n=args.fibre_min_n,
                       spacing_mm=args.spacing, seed=args.seed, scheduler=args.scheduler, workers=args.workers,
                       out_dir=args.out, efield=not args.no_efield, fibres=not args.no_fibres,
                       prediction=not args.no_prediction, figures=not args.no_figures,
                       chunk_voxels=args.chunk_voxels)
    sys.stdout.write(f"{result.summary_line()}\nwritten to {result.out_dir}/ (report.md, report.html)\n")
    return _exit_status(result.summary, args)


def _cmd_render(args: argparse.Namespace) -> int:
    from .outputs import run
    from .scene import Scene
    from .views.render import check_rendering, parse_cameras, parse_size, views_writer

    cameras = parse_cameras(args.camera)
    size = parse_size(args.size)
    with collecting():
        scene = Scene.from_toml(args.config)
        check_rendering()  # before the simulation: fail fast where there is no offscreen OpenGL
        summary = run(scene, args.out, progress=not args.quiet, extra=views_writer(cameras, size, not args.no_html))
    _report(summary, args.out)
    return _exit_status(summary, args)


def _cmd_leads(args: argparse.Namespace) -> int:
    from .leads import get_lead, lead_catalogue

    if args.picture is not None or args.out is not None:
        if args.picture is None or args.out is None:
            raise VtaError("vta leads: --picture MODEL and --out FILE.png go together")
        from .views.lead_picture import lead_picture_png

        lead = get_lead(args.picture)
        path = lead_picture_png(lead, args.out)
        sys.stdout.write(f"{lead.name}: contact layout written to {path}\n")
        return 0
    leads = lead_catalogue()

    def gaps_text(m) -> str:
        if not m.gaps_mm:
            return "-"
        return f"{m.gaps_mm[0]:g}" if len(set(m.gaps_mm)) == 1 else ",".join(f"{g:g}" for g in m.gaps_mm)

    if args.json:
        rows = [
            {
                "model": m.name,
                "manufacturer": m.manufacturer,
                "contacts": m.n_contacts,
                "levels": list(m.levels),
                "segments_per_level": "-".join(map(str, m.levels)),
                "contact_length_mm": m.contact_length_mm,
                "gaps_mm": list(m.gaps_mm),
                "diameter_mm": m.diameter_mm,
                "tip_length_mm": m.tip_length_mm,
                "tip_is_contact": m.tip_is_contact,
                "active_span_mm": round(m.active_span_mm, 6),
                "segment_arc_deg": m.segment_arc_deg if m.is_directional else None,
                "body_length_mm": m.body_length_mm,
                "aliases": list(m.aliases),
                "source": m.source,
            }
            for m in leads.values()
        ]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return 0
    header = (f"{'model':38s} {'contacts':>8s} {'segments/level':>16s} {'contact':>7s} {'gaps':>12s} "
              f"{'diam':>5s} {'tip':>5s} {'span':>6s}")
    out = [header, "-" * len(header)]
    for m in leads.values():
        tip = f"{m.tip_length_mm:g}" + ("*" if m.tip_is_contact else "")
        levels = "-".join(map(str, m.levels))
        out.append(f"{m.name:38s} {m.n_contacts:8d} {levels:>16s} {m.contact_length_mm:7g} {gaps_text(m):>12s} "
                   f"{m.diameter_mm:5g} {tip:>5s} {m.active_span_mm:6g}")
    out.append("lengths in mm, distal level first; tip: distal end to the first contact above it "
               "(* = the tip is itself a contact that long); span: distal edge of the first contact to the "
               "proximal edge of the last")
    out.append("aliases and sources: vta leads --json; a drawing: vta leads --picture MODEL --out FILE.png")
    sys.stdout.write("\n".join(out) + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `vta` command."""
    parser = argparse.ArgumentParser(prog="vta", description="Deep brain stimulation field and VTA modelling.")
    parser.add_argument("--version", action="version", version=f"vta {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", required=True)

    p_run = sub.add_parser("run", help="simulate one stimulation setting")
    p_run.add_argument("config", help="TOML configuration file")
    p_run.add_argument("--out", required=True, help="output folder (created; files replaced atomically)")
    p_run.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p_run.add_argument("--strict", action="store_true", help="exit with status 3 if the run has any warning")
    p_run.set_defaults(func=_cmd_run)

    p_demo = sub.add_parser("demo", help="run the bundled demo configuration")
    p_demo.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    p_demo.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p_demo.add_argument("--no-render", action="store_true", help="skip the PNG/HTML views")
    p_demo.add_argument("--strict", action="store_true", help="exit with status 3 if the run has any warning")
    p_demo.set_defaults(func=_cmd_demo)

    p_plan = sub.add_parser("plan", help="the live targeting app in the browser (default: the demo scene)")
    p_plan.add_argument("config", nargs="?", default=None, help="TOML configuration file (default: the bundled demo)")
    p_plan.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p_plan.add_argument("--host", default="localhost", help="interface to listen on (default localhost)")
    p_plan.add_argument("--no-browser", action="store_true", help="do not open a browser window")
    p_plan.add_argument("--save-dir", default="plan_out", help="default folder of 'save plan' (default plan_out)")
    p_plan.set_defaults(func=_cmd_plan)

    p_sweep = sub.add_parser("sweep", help="sweep contacts, amplitudes and pulse widths on one solved basis")
    p_sweep.add_argument("config", help="TOML configuration file (lead, anatomy, tissue, threshold)")
    p_sweep.add_argument("--out", required=True, help="output folder (sweep.csv + coverage PNGs)")
    p_sweep.add_argument("--amplitudes", default="0.5:5:0.5", help="start:stop:step or a,b,c (mA or V; default 0.5:5:0.5)")
    p_sweep.add_argument("--pulse-widths", default=None, help="a,b,c in us (default: the config's pulse width)")
    p_sweep.add_argument("--quasi-static", action="store_true",
                         help="with [signal] in the config: skip the time-domain columns (td_*)")
    p_sweep.add_argument("--configs", default="monopolar,bipolar-adjacent",
                         help="contact configurations, a,b of monopolar, bipolar-adjacent, double-monopolar, "
                              "segments, segment-split (directional leads; splits in 0.25 steps, current mode) "
                              "(default monopolar,bipolar-adjacent)")
    p_sweep.add_argument("--spacing", type=float, default=None, help=argparse.SUPPRESS)  # ignored (old scripts)
    p_sweep.set_defaults(func=_cmd_sweep)

    p_opt = sub.add_parser("optimise", aliases=["optimize"],
                           help="rank settings by target coverage within spill and safety limits")
    p_opt.add_argument("config", help="TOML configuration file (lead, anatomy, tissue, threshold)")
    p_opt.add_argument("--out", required=True, help="output folder (ranked.csv)")
    p_opt.add_argument("--targets", default=None, help="target structures, a,b (default: NAc on the lead's side)")
    p_opt.add_argument("--avoid", action="append", metavar="NAME:MM3", help="largest overlap with a structure (repeatable)")
    p_opt.add_argument("--max-tract", action="append", metavar="NAME:FRACTION",
                       help="largest fraction of a [tracts] tract activated (repeatable)")
    p_opt.add_argument("--max-spill", type=float, default=None, help="largest VTA volume outside the targets (mm^3)")
    p_opt.add_argument("--max-charge-density", type=float, default=30.0, help="uC/cm^2 per phase (default 30)")
    p_opt.add_argument("--no-shannon", action="store_true", help="do not apply the Shannon (k = 1.85) limit")
    p_opt.add_argument("--max-amplitude", type=float, default=None, help="device limit (mA or V)")
    p_opt.add_argument("--pulse-widths", default=None, help="a,b,c in us (default: the config's pulse width)")
    p_opt.add_argument("--configs", default="monopolar,bipolar-adjacent,double-monopolar",
                       help="candidate configurations, a,b of monopolar, bipolar-adjacent, double-monopolar, "
                            "segments, segment-split (directional leads; splits in 0.25 steps, current mode) "
                            "(default monopolar,bipolar-adjacent,double-monopolar)")
    p_opt.add_argument("--resolution", type=float, default=0.05, help="amplitude step (mA or V; default 0.05)")
    p_opt.add_argument("--spacing", type=float, default=None, help=argparse.SUPPRESS)  # ignored (old scripts)
    p_opt.add_argument("--top", type=int, default=None, help="keep the best N rows")
    p_opt.set_defaults(func=_cmd_optimise)

    p_batch = sub.add_parser("batch", help="run a cohort manifest on Dask (resumable; group table + frequency map)")
    p_batch.add_argument("manifest", help="cohort manifest (.csv or .toml; see vta/manifest.py)")
    p_batch.add_argument("--template", default=None, help="template TOML for everything the manifest does not give")
    p_batch.add_argument("--out", required=True, help="output folder (subjects/, group.csv, errors.csv, vta_frequency.nii.gz)")
    p_batch.add_argument("--scheduler", default=None, help="address of a running Dask scheduler (default: a LocalCluster)")
    p_batch.add_argument("--workers", type=int, default=None, help="LocalCluster worker processes (default: one per core)")
    p_batch.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p_batch.set_defaults(func=_cmd_batch)

    p_group = sub.add_parser("group", help="cohort outcome analysis of a finished batch: sweet-spot maps, fibre "
                                           "filtering, cross-validated prediction (see docs)")
    p_group.add_argument("batch_dir", help="output folder of vta batch (group.csv, subjects/)")
    p_group.add_argument("--outcome", required=True, help="outcome column of group.csv or --outcomes (higher = better)")
    p_group.add_argument("--covariate", action="append", metavar="COL",
                         help="column to regress out of the outcome (repeatable)")
    p_group.add_argument("--outcomes", default=None, metavar="CSV",
                         help="extra/overriding variables: subject[,hemisphere],columns...")
    p_group.add_argument("--unit", choices=("subject", "hemisphere"), default="subject",
                         help="analysis unit: a patient (both hemispheres pooled; default) or a hemisphere")
    p_group.add_argument("--mirror", action="store_true", help="mirror left hemispheres onto the right (x -> -x)")
    p_group.add_argument("--test", choices=("t", "wilcoxon"), default="t",
                         help="Welch t / Pearson (default), or Wilcoxon rank-sum / Spearman")
    p_group.add_argument("--min-n", type=int, default=None,
                         help="fewest units covering a tested voxel (default: max(3, 20%% of the units)); "
                              "when given, also for fibres")
    p_group.add_argument("--fibre-min-n", type=int, default=None,
                         help="fewest units activating (and not activating) a tested fibre "
                              "(default: --min-n if given, else max(5, 10%% of the units))")
    p_group.add_argument("--permutations", type=int, default=1000, help="permutations for p-values (default 1000)")
    p_group.add_argument("--alpha", type=float, default=0.05, help="family-wise error level (default 0.05)")
    p_group.add_argument("--folds", default="auto",
                         help="cross-validation: loo, a number of folds, or auto (default: loo up to 200 units, "
                              "else 10)")
    p_group.add_argument("--tract", default=None, help="tract of tracts.csv to filter (default: the only one)")
    p_group.add_argument("--spacing", type=float, default=1.0, help="common MNI grid voxel size in mm (default 1)")
    p_group.add_argument("--seed", type=int, default=0, help="seed of permutations and folds (default 0)")
    where = p_group.add_mutually_exclusive_group()
    where.add_argument("--scheduler", default=None, help="address of a running Dask scheduler (tcp://host:port)")
    where.add_argument("--workers", type=int, default=None, help="run the statistics on a LocalCluster of N workers")
    p_group.add_argument("--chunk-voxels", type=int, default=None,
                         help="voxels per statistics chunk / Dask task (default: automatic, ~100 MB each)")
    p_group.add_argument("--out", default=None, help="output folder (default BATCH_DIR/group_<outcome>)")
    p_group.add_argument("--no-efield", action="store_true", help="skip the E-field maps")
    p_group.add_argument("--no-fibres", action="store_true", help="skip fibre filtering")
    p_group.add_argument("--no-prediction", action="store_true", help="skip cross-validated prediction")
    p_group.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    p_group.add_argument("--strict", action="store_true", help="exit with status 3 if the analysis has any warning")
    p_group.set_defaults(func=_cmd_group)

    p_render = sub.add_parser("render", help="simulate and draw 3D targeting views (PNG per camera + interactive HTML)")
    p_render.add_argument("config", help="TOML configuration file")
    p_render.add_argument("--out", required=True, help="output folder (render_<camera>.png, scene.html, summary.json)")
    p_render.add_argument("--camera", default="anterior,lateral,trajectory",
                          help="cameras, comma-separated: anterior, lateral, trajectory (default: all three)")
    p_render.add_argument("--no-html", action="store_true", help="do not write the interactive scene.html")
    p_render.add_argument("--size", default="1400x1000", help="PNG size WxH in pixels (default 1400x1000)")
    p_render.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p_render.add_argument("--strict", action="store_true", help="exit with status 3 if the run has any warning")
    p_render.set_defaults(func=_cmd_render)

    p_warm = sub.add_parser("warmup", help="compile the numerical kernels and build the default anatomy once "
                                           "(after installing; makes the first real run as fast as later ones)")
    p_warm.set_defaults(func=_cmd_warmup)

    p_leads = sub.add_parser("leads", help="list the lead catalogue (geometry in mm), or draw one lead")
    p_leads.add_argument("--json", action="store_true", help="machine-readable output")
    p_leads.add_argument("--picture", metavar="MODEL", default=None,
                         help="draw MODEL's contact layout (side view + unrolled surface, C0..Cn, mm) to --out")
    p_leads.add_argument("--out", metavar="FILE.png", default=None, help="the PNG file for --picture")
    p_leads.set_defaults(func=_cmd_leads)
    return parser


_terminated = False


def _raise_terminated(signum, frame) -> None:
    global _terminated
    _terminated = True
    raise Terminated()


def _leave_now_if_stuck(status: int) -> int:
    """Exit at once when a thread still runs native code that cannot be interrupted
    (gmsh meshing a large lead): cleanup is done, nothing else is worth waiting for."""
    import threading

    busy = [t for t in threading.enumerate() if t is not threading.main_thread() and t.name.startswith("vta-")
            and not t.daemon]
    if busy:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `vta` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if isinstance(getattr(args, "out", None), str) and not args.out.strip():
        sys.stderr.write("vta: error: --out is empty: give an output folder\n")
        return EXIT_BAD_INPUT
    previous = None
    if threading_is_main():
        previous = signal.signal(signal.SIGTERM, _raise_terminated)  # like Ctrl-C: clean up, then exit 143
    try:
        return args.func(args)
    except VtaError as exc:
        sys.stderr.write(f"vta: error: {exc}\n")
        return EXIT_BAD_INPUT
    except OSError as exc:  # anything not already named by the code that met it
        from .io import os_error

        sys.stderr.write(f"vta: error: {os_error(exc, action='cannot access')}\n")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as exc:
        status = EXIT_SIGTERM if isinstance(exc, Terminated) or _terminated else EXIT_SIGINT
        word = "terminated" if status == EXIT_SIGTERM else "interrupted"
        from .studies.batch import BatchInterrupted

        line = exc.message() if isinstance(exc, BatchInterrupted) else f"vta: {word}; no partial outputs were written"
        sys.stderr.write(line + "\n")
        return _leave_now_if_stuck(status)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def threading_is_main() -> bool:
    """Signal handlers can only be set from the main thread."""
    import threading

    return threading.current_thread() is threading.main_thread()

if __name__ == "__main__":
    sys.exit(main())
