"""The `vta` command.

``vta run CONFIG.toml --out DIR``   simulate one setting, write summary.json + NIfTI
``vta leads [--json]``              list the lead catalogue
``vta demo --out DIR``              run the bundled demo configuration

Bad input prints one line ``vta: error: ...`` on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from importlib import resources
from pathlib import Path

from . import __version__
from .errors import VtaError

log = logging.getLogger("vta")

EXIT_BAD_INPUT = 2


def _cmd_run(args: argparse.Namespace) -> int:
    from .config import load_config
    from .pipeline import run

    config = load_config(args.config)
    summary = run(config, args.out, progress=not args.quiet)
    _report(summary, args.out)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .config import parse_config
    from .pipeline import run
    import tomllib

    text = resources.files("vta").joinpath("data/demo.toml").read_text(encoding="utf-8")
    config = parse_config(tomllib.loads(text), "vta/data/demo.toml")
    summary = run(config, args.out, progress=not args.quiet)
    _report(summary, args.out)
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    import numpy as np

    from .config import load_config
    from .io import OutputTransaction
    from .pipeline import _domain_box, build_basis, choose_method, conductivity_model
    from .sweep import SweepSpec, parse_amplitudes, parse_pulse_widths, plot_coverage, standard_configs, sweep, write_table

    amplitudes = parse_amplitudes(args.amplitudes)
    kinds = [k.strip() for k in args.configs.split(",") if k.strip()]
    if not kinds:
        raise VtaError("the --configs list is empty")
    if not (args.spacing > 0 and np.isfinite(args.spacing)):
        raise VtaError(f"--spacing must be positive, got {args.spacing}")
    config = load_config(args.config)
    pulse_widths = parse_pulse_widths(args.pulse_widths) if args.pulse_widths else [config.stimulation.pulse_width_us]
    lead = config.lead
    spec = SweepSpec(standard_configs(lead.model.n_contacts, kinds), amplitudes, pulse_widths, config.stimulation.mode)
    basis = build_basis(config, choose_method(config))
    structures, targets = {}, []
    if config.anatomy is not None:
        structures = config.anatomy.load().structures
        tip_x = float(lead.placement.contact_center_mm(lead.model, 0)[0])
        side = "R" if tip_x >= 0 else "L"
        for prefix in ("NAc", "ALIC"):
            targets += [n for n in structures if n.lower() == f"{prefix}_{side}".lower()]
    model = conductivity_model(config)
    axon = config.vta.axon_diameter_um  # None: the fixed threshold at every pulse width
    rows = sweep(basis, spec, threshold_V_per_mm=config.vta.threshold_V_per_mm, axon_diameter_um=axon,
                 structures=structures, targets=targets or None, lead=lead, region_mm=_domain_box(config),
                 spacing_mm=args.spacing, sigma_S_per_m=min(model.wm_S_per_m, model.gm_S_per_m))
    with OutputTransaction(args.out) as tx:
        write_table(rows, tx.path("sweep.csv"))
        written = ["sweep.csv"]
        for name in targets:
            plot_coverage(rows, name, tx.path(f"coverage_{name}.png"))
            written.append(f"coverage_{name}.png")
    n30 = sum(r["exceeds_30uC_cm2"] for r in rows)
    nsh = sum(r["exceeds_shannon"] for r in rows)
    sys.stdout.write(f"{len(rows)} settings ({len(spec.configs)} configurations); {n30} above 30 uC/cm^2, "
                     f"{nsh} above the Shannon limit\nwritten to {args.out}/: {', '.join(written)}\n")
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
        f"time {t['total']:.2f} s",
        f"written to {out}/summary.json",
    ]
    sys.stdout.write("\n".join(lines) + "\n")


def _cmd_leads(args: argparse.Namespace) -> int:
    from .leads import lead_catalogue

    leads = lead_catalogue()
    if args.json:
        rows = [
            {
                "model": m.name,
                "manufacturer": m.manufacturer,
                "contacts": m.n_contacts,
                "levels": list(m.levels),
                "contact_length_mm": m.contact_length_mm,
                "gaps_mm": list(m.gaps_mm),
                "diameter_mm": m.diameter_mm,
                "tip_length_mm": m.tip_length_mm,
                "tip_is_contact": m.tip_is_contact,
                "aliases": list(m.aliases),
                "source": m.source,
            }
            for m in leads.values()
        ]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return 0
    header = f"{'model':36s} {'contacts':>8s} {'levels':>16s} {'length':>7s} {'gaps':>12s} {'diam':>5s} {'tip':>5s}"
    out = [header, "-" * len(header)]
    for m in leads.values():
        gaps = ",".join(f"{g:g}" for g in sorted(set(m.gaps_mm)))
        tip = f"{m.tip_length_mm:g}" + ("*" if m.tip_is_contact else "")
        levels = "-".join(map(str, m.levels))
        out.append(
            f"{m.name:36s} {m.n_contacts:8d} {levels:>16s} {m.contact_length_mm:7g} {gaps:>12s} {m.diameter_mm:5g} {tip:>5s}"
        )
    out.append("lengths in mm; * = the tip is a contact; aliases: vta leads --json")
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
    p_run.set_defaults(func=_cmd_run)

    p_demo = sub.add_parser("demo", help="run the bundled demo configuration")
    p_demo.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    p_demo.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p_demo.set_defaults(func=_cmd_demo)

    p_sweep = sub.add_parser("sweep", help="sweep contacts, amplitudes and pulse widths on one solved basis")
    p_sweep.add_argument("config", help="TOML configuration file (lead, anatomy, tissue, threshold)")
    p_sweep.add_argument("--out", required=True, help="output folder (sweep.csv + coverage PNGs)")
    p_sweep.add_argument("--amplitudes", default="0.5:5:0.5", help="start:stop:step or a,b,c (mA or V; default 0.5:5:0.5)")
    p_sweep.add_argument("--pulse-widths", default=None, help="a,b,c in us (default: the config's pulse width)")
    p_sweep.add_argument("--configs", default="monopolar,bipolar-adjacent", help="monopolar,bipolar-adjacent")
    p_sweep.add_argument("--spacing", type=float, default=0.5, help="voxel size of the VTA grid (mm; default 0.5)")
    p_sweep.set_defaults(func=_cmd_sweep)

    p_leads = sub.add_parser("leads", help="list the lead catalogue")
    p_leads.add_argument("--json", action="store_true", help="machine-readable output")
    p_leads.set_defaults(func=_cmd_leads)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `vta` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except VtaError as exc:
        sys.stderr.write(f"vta: error: {exc}\n")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        sys.stderr.write("vta: interrupted; no partial outputs were written\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
