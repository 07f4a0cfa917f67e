"""The ``vta group`` report: sweet-spot slice figures and a short Markdown + HTML report.

:func:`slice_figure` draws a voxel map over three orthogonal MNI slices through its
peak (matplotlib, Agg): the statistic map (diverging colours, symmetric scale) over a
grey background - the MNI152 2009 T1 template that nilearn ships, or plain grey
without it - the FWE-significant voxels outlined, the tested region dashed, axes in
MNI mm and L/R labels (neurological view: the left hemisphere on the left).

:func:`write_report` renders the run's summary (:func:`vta.cohort.run.run_group`)
into ``report.md`` and a self-contained ``report.html`` (figures by relative link),
listing the parameters, the units dropped and why, the covariates regressed out, the
peak coordinates and values, the FWE thresholds, the prediction performance with
permutation p-values, the top fibres, the warnings and the methods' references.
"""

from __future__ import annotations

import html
import importlib.util
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_path, atomic_write_bytes
from .voxel_stats import VoxelMaps

__all__ = ["REFERENCES", "render_report", "slice_figure", "write_report"]

log = logging.getLogger(__name__)

#: Margin around the analysed voxels in the slice figures (mm).
FIGURE_MARGIN_MM = 12.0
_T1_FILE = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"

REFERENCES = [
    "Nichols TE, Holmes AP (2002). Nonparametric permutation tests for functional neuroimaging: a primer with "
    "examples. Hum Brain Mapp 15:1-25.",
    "Dembek TA, Baldermann J, Petry-Schmelzer JN, et al. (2019). Probabilistic sweet spots predict motor outcome "
    "for deep brain stimulation. Ann Neurol 86:527-538.",
    "Baldermann JC, Melzer C, Zapf A, et al. (2019). Connectivity profile predictive of effective deep brain "
    "stimulation in obsessive-compulsive disorder. Biol Psychiatry 85:735-743.",
    "Horn A, Reich M, Vorwerk J, et al. (2017). Connectivity predicts deep brain stimulation outcome in "
    "Parkinson disease. Ann Neurol 82:67-78.",
    "Li N, Baldermann JC, Kibleur A, et al. (2020). A unified connectomic target for deep brain stimulation in "
    "obsessive-compulsive disorder. Nat Commun 11:3364.",
    "Winkler AM, Ridgway GR, Webster MA, Smith SM, Nichols TE (2014). Permutation inference for the general "
    "linear model. NeuroImage 92:381-397.",
]

_TEST_LABEL = {
    ("vta", "t"): "Welch t (units whose VTA covers the voxel vs the others)",
    ("vta", "wilcoxon"): "Wilcoxon rank-sum z (covered vs not covered)",
    ("efield", "t"): "Pearson r of |E| with the outcome, as t",
    ("efield", "wilcoxon"): "Spearman r of |E| with the outcome, as t",
}


# ----------------------------------------------------------------------------- figure


def _mni_t1(shape: tuple[int, int, int], affine: np.ndarray) -> np.ndarray | None:
    """The MNI152 T1 template resampled onto a grid, scaled to [0, 1]; None without nilearn."""
    try:
        spec = importlib.util.find_spec("nilearn")
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / _T1_FILE
        if not path.is_file():
            return None
        from ..anatomy.atlas_io import read_nifti, resample_to

        t1 = resample_to(read_nifti(path, what="MNI template"), shape, affine, order=1).astype(np.float32)
    except Exception:  # noqa: BLE001 - a background is a nicety; plain grey instead
        log.debug("no MNI template background", exc_info=True)
        return None
    hi = float(np.percentile(t1[t1 > 0], 99.5)) if np.any(t1 > 0) else 0.0
    return np.clip(t1 / hi, 0.0, 1.0) if hi > 0 else None


def _centre(maps: VoxelMaps) -> np.ndarray:
    """Voxel index of the figure's crossing point: the top peak, else the N-map maximum."""
    peaks = maps.peaks(1)
    if peaks:
        p = peaks[0]
        ijk = np.linalg.solve(maps.grid.affine, [p["x_mm"], p["y_mm"], p["z_mm"], 1.0])[:3]
        return np.rint(ijk).astype(int)
    return np.array(np.unravel_index(int(np.argmax(maps.n_map)), maps.n_map.shape))


def slice_figure(maps: VoxelMaps, path: str | Path, title: str = "", mirror: bool = False) -> Path:
    """Draw ``maps``'s statistic over axial, coronal and sagittal MNI slices through its peak.

    Parameters
    ----------
    maps : VoxelMaps
        From :func:`vta.cohort.voxel_stats.sweet_spot`.
    path : str or Path
        The PNG file.
    title : str
        The figure title (e.g. the outcome).
    mirror : bool
        Note that left hemispheres were mirrored onto the right.

    Returns
    -------
    Path
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    path = Path(path)
    pad = int(np.ceil(FIGURE_MARGIN_MM / maps.grid.spacing_mm))
    shape = tuple(int(n) + 2 * pad for n in maps.grid.shape)
    affine = maps.grid.affine.copy()
    affine[:3, 3] -= pad * maps.grid.spacing_mm

    def padded(vol: np.ndarray, fill) -> np.ndarray:
        return np.pad(vol, pad, constant_values=fill)

    stat = padded(np.where(maps.tested, maps.stat_map, np.nan).astype(np.float32), np.nan)
    sig = padded(maps.significant, False)
    tested = padded(maps.tested, False)
    covered = padded(maps.n_map > 0, False)
    t1 = _mni_t1(shape, affine)
    centre = _centre(maps) + pad
    finite = np.abs(stat[np.isfinite(stat)])
    vmax = float(finite.max()) if finite.size else 1.0
    vmax = vmax if vmax > 0 else 1.0
    coords = [affine[d, 3] + affine[d, d] * np.arange(shape[d]) for d in range(3)]
    half = maps.grid.spacing_mm / 2
    views = [("axial", 2, (0, 1)), ("coronal", 1, (0, 2)), ("sagittal", 0, (1, 2))]
    fig, axes = plt.subplots(1, 3, figsize=(14.5, 5.6), constrained_layout=True)
    image = None
    for ax, (name, fixed, (h, v)) in zip(axes, views):
        index = [slice(None)] * 3
        index[fixed] = int(np.clip(centre[fixed], 0, shape[fixed] - 1))
        index = tuple(index)
        extent = (coords[h][0] - half, coords[h][-1] + half, coords[v][0] - half, coords[v][-1] + half)
        if t1 is not None:
            ax.imshow(t1[index].T, origin="lower", extent=extent, cmap="gray", vmin=0, vmax=1, interpolation="bilinear")
        else:
            ax.imshow(np.full(stat[index].T.shape, 0.55), origin="lower", extent=extent, cmap="gray", vmin=0, vmax=1)
        image = ax.imshow(np.ma.masked_invalid(stat[index].T), origin="lower", extent=extent, cmap="RdBu_r",
                          vmin=-vmax, vmax=vmax, alpha=0.9, interpolation="nearest")
        for mask, colour, style, width in ((covered, "0.85", ":", 0.8), (tested, "0.2", "--", 0.9),
                                           (sig, "#00d000", "-", 2.0)):
            plane = mask[index].T.astype(float)
            if plane.any() and not plane.all():
                ax.contour(coords[h], coords[v], plane, levels=[0.5], colors=colour, linestyles=style,
                           linewidths=width)
        ch, cv = (int(np.clip(centre[a], 0, shape[a] - 1)) for a in (h, v))
        ax.plot(coords[h][ch], coords[v][cv], "+", color="k", markersize=10, markeredgewidth=1.5)
        where = "xyz"[fixed]
        ax.set_title(f"{name}, {where} = {coords[fixed][index[fixed]]:.0f} mm")
        ax.set_xlabel(f"{'xyz'[h]} (mm)")
        ax.set_ylabel(f"{'xyz'[v]} (mm)")
        ax.set_aspect("equal")
        if h == 0:  # x runs left to right: neurological view
            for label, xpos, align in (("L", 0.02, "left"), ("R", 0.98, "right")):
                ax.text(xpos, 0.97, label, transform=ax.transAxes, ha=align, va="top", fontsize=14,
                        fontweight="bold", color="white", bbox={"facecolor": "black", "alpha": 0.4, "pad": 2})
    bar = fig.colorbar(image, ax=list(axes), shrink=0.85, pad=0.01)
    bar.set_label(_TEST_LABEL[(maps.kind, maps.test)])
    handles = [Line2D([], [], color="#00d000", lw=2.0, label=f"p_FWE <= {maps.alpha:g}"),
               Line2D([], [], color="0.2", ls="--", lw=0.9, label=f"tested (N >= {maps.min_n})"),
               Line2D([], [], color="0.85", ls=":", lw=0.8, label="covered by any VTA")]
    axes[0].legend(handles=handles, loc="lower left", fontsize=8, framealpha=0.7)
    note = " (left hemispheres mirrored to the right)" if mirror else ""
    bg = "MNI152 2009 T1" if t1 is not None else "plain grey (no MNI template found)"
    fig.suptitle(f"{title}{note}", fontsize=12)
    fig.supxlabel(f"N = {maps.n_units} units; {maps.permutations} permutations; FWE threshold |{maps.stat_name}| > "
                  f"{maps.threshold:.3g}; + = peak; background: {bg}", fontsize=9)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)
    return path


# ----------------------------------------------------------------------------- report


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if not np.isfinite(v):
            return "-" if np.isnan(v) else ("inf" if v > 0 else "-inf")
        return f"{v:.{digits}g}"
    return str(value)


def _blocks(summary: dict) -> list[tuple]:
    """The report as blocks: ("h", level, text), ("p", text), ("ul", items), ("table", header, rows),
    ("img", file, alt)."""
    s = summary
    c = s["cohort"]
    prm = s["parameters"]
    out: list[tuple] = [("h", 1, f"vta group: outcome '{s['outcome']}'")]
    out.append(("p", f"Batch folder `{s['batch_dir']}`; vta {s['version']}; written {s['written']}."))
    out.append(("h", 2, "Cohort"))
    kind = "binary (coded 0/1)" if c["binary"] else "continuous"
    desc = [f"{c['n_units']} analysis units ({prm['unit']}s); outcome {kind}: " + c["outcome_description"],
            "left hemispheres mirrored onto the right (x -> -x)" if prm["mirror"] else "hemispheres kept as they are"]
    if c["covariates"]:
        desc.append("covariates regressed out of the outcome before the voxel and fibre statistics (OLS with an "
                    "intercept; the permutations shuffle the residuals): " + ", ".join(c["covariates"]))
    else:
        desc.append("no covariates")
    out.append(("ul", desc))
    if c["dropped"]:
        out.append(("p", f"{len(c['dropped'])} unit(s) dropped from this analysis:"))
        out.append(("table", ["unit", "reason"], [[d["unit"], d["reason"]] for d in c["dropped"]]))
    else:
        out.append(("p", "No unit was dropped."))
    out.append(("h", 2, "Parameters"))
    out.append(("table", ["parameter", "value"], [
        ["test", prm["test"]], ["min N (units covering a tested voxel)", prm["min_n"]],
        ["min N (units activating, and not activating, a tested fibre)", prm.get("fibre_min_n", prm["min_n"])],
        ["permutations", prm["permutations"]], ["alpha (FWE)", prm["alpha"]], ["seed", prm["seed"]],
        ["grid spacing (mm)", prm["spacing_mm"]], ["cross-validation folds", prm["folds"]],
        ["tract", prm.get("tract") or "-"]]))
    for key, label in (("vta", "Sweet spot (binary VTAs)"), ("efield", "Sweet spot (E-field magnitude)")):
        m = s["maps"].get(key)
        if m is None:
            continue
        out.append(("h", 2, label))
        if m.get("skipped"):
            out.append(("p", f"Not computed: {m['skipped']}."))
            continue
        out.append(("p", f"{_TEST_LABEL[(key, prm['test'])]}; {m['n_tested']} voxels tested "
                         f"({m['n_tested_mm3']:.0f} mm^3); FWE-corrected threshold |{m['stat_name']}| > "
                         f"{_fmt(m['threshold'])} (max-statistic, {prm['permutations']} permutations); "
                         f"{m['n_positive']} voxels significant with positive and {m['n_negative']} with negative "
                         f"{m['stat_name']} (p_FWE <= {prm['alpha']:g})."))
        rows = [[i + 1, _fmt(p["x_mm"]), _fmt(p["y_mm"]), _fmt(p["z_mm"]), _fmt(p["stat"]), _fmt(p["p_fwe"]),
                 _fmt(p["p"]), p["n_units"], _fmt(p["mean_outcome"]), _fmt(p["cluster_mm3"]),
                 _fmt(p["significant"])] for i, p in enumerate(m["peaks"])]
        if rows:
            out.append(("table", ["#", "x (mm)", "y (mm)", "z (mm)", m["stat_name"], "p_FWE", "p (uncorr.)",
                                  "N covering", "mean outcome", "cluster (mm^3)", "significant"], rows))
            if not m["peaks"][0]["significant"]:
                out.append(("p", "No voxel survives FWE correction; the row is the largest |statistic| of the map."))
        if m.get("figure"):
            out.append(("img", m["figure"], label))
    f = s.get("fibres")
    out.append(("h", 2, "Fibre filtering"))
    if not f or f.get("skipped"):
        out.append(("p", f"Not computed: {(f or {}).get('skipped', 'no fibre data')}."))
    else:
        out.append(("p", f"Tract {f['tract']}: {f['n_fibres']} fibres, {f['n_tested']} tested (activated in at "
                         f"least {prm.get('fibre_min_n', prm['min_n'])} and at most N - "
                         f"{prm.get('fibre_min_n', prm['min_n'])} units); {f['n_significant']} "
                         f"significant (p_FWE <= {prm['alpha']:g}, max-statistic over fibres)."))
        if f["top"]:
            out.append(("table", ["streamline", "activated in", f"{f['stat_name']}", "p_FWE", "significant"],
                        [[t["streamline"], t["n_activated"], _fmt(t["stat"]), _fmt(t["p_fwe"]),
                          _fmt(t["significant"])] for t in f["top"]]))
        if f.get("figure"):
            out.append(("img", f["figure"], "fibres coloured by statistic"))
    out.append(("h", 2, "Cross-validated prediction"))
    preds = s.get("prediction") or {}
    rows = [[k, p["folds"], _fmt(p["r"]), _fmt(p["r_p_perm"]), _fmt(p.get("auc")), _fmt(p.get("auc_p_perm"))]
            for k, p in preds.items() if not p.get("skipped")]
    if rows:
        out.append(("p", "The statistic is recomputed inside each training fold (no leakage); a left-out unit's "
                         "score is the mean training statistic over its features weighted by its own "
                         "coverage/activation; the prediction is a linear fit of the outcome on the score in the "
                         "training fold. p-values: the whole cross-validation repeated on permuted outcomes. "
                         "The observed outcome is predicted as given (covariates are not regressed out here)."))
        out.append(("table", ["features", "folds", "r (predicted vs observed)", "p (perm.)", "AUC", "p (perm.)"],
                    rows))
    for k, p in preds.items():
        if p.get("skipped"):
            out.append(("p", f"{k}: not computed: {p['skipped']}."))
        elif p.get("figure"):
            out.append(("img", p["figure"], f"predicted vs observed ({k})"))
    if not preds:
        out.append(("p", "Not computed."))
    out.append(("h", 2, "Warnings"))
    out.append(("ul", list(s["warnings"])) if s["warnings"] else ("p", "None."))
    out.append(("h", 2, "Methods"))
    out.append(("p", "Images of vta run (binary VTA masks and |E| in V/mm) resampled by nearest neighbour onto a "
                     f"common {prm['spacing_mm']:g} mm MNI grid. Voxel-wise tests across units, two-sided, with "
                     "family-wise error control by the maximum statistic over permutations of the outcome "
                     "(Nichols & Holmes 2002), as in probabilistic sweet-spot mapping (Dembek et al. 2019) and "
                     "E-field models (Horn et al. 2017; Li et al. 2020); fibre filtering after Baldermann et al. "
                     "2019; covariates by regressing them out of the outcome (Winkler et al. 2014)."))
    out.append(("ul", REFERENCES))
    out.append(("h", 2, "Files"))
    out.append(("ul", [f"`{name}`" for name in s.get("outputs", [])]))
    return out


def render_report(summary: dict) -> tuple[str, str]:
    """``(markdown, html)`` of a ``vta group`` summary (see :func:`vta.cohort.run.run_group`)."""
    md: list[str] = []
    ht: list[str] = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>",
                     f"<title>vta group: {html.escape(summary['outcome'])}</title>",
                     "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}"
                     "table{border-collapse:collapse;margin:0.6em 0}td,th{border:1px solid #bbb;padding:3px 8px;"
                     "text-align:right}th{background:#eee}td:first-child,th:first-child{text-align:left}"
                     "img{max-width:100%;border:1px solid #ddd}code{background:#f4f4f4}</style></head><body>"]

    def inline(text: str) -> str:
        parts = str(text).split("`")
        return "".join(f"<code>{html.escape(p)}</code>" if i % 2 else html.escape(p) for i, p in enumerate(parts))

    for block in _blocks(summary):
        tag = block[0]
        if tag == "h":
            md += ["#" * block[1] + " " + block[2], ""]
            ht.append(f"<h{block[1]}>{inline(block[2])}</h{block[1]}>")
        elif tag == "p":
            md += [block[1], ""]
            ht.append(f"<p>{inline(block[1])}</p>")
        elif tag == "ul":
            md += [f"- {item}" for item in block[1]] + [""]
            ht.append("<ul>" + "".join(f"<li>{inline(item)}</li>" for item in block[1]) + "</ul>")
        elif tag == "table":
            header, rows = block[1], block[2]
            md.append("| " + " | ".join(map(str, header)) + " |")
            md.append("|" + "|".join("---" for _ in header) + "|")
            md += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
            md.append("")
            ht.append("<table><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>"
                      + "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                                for row in rows) + "</table>")
        elif tag == "img":
            md += [f"![{block[2]}]({block[1]})", ""]
            ht.append(f"<p><img src='{html.escape(block[1])}' alt='{html.escape(block[2])}'></p>")
    ht.append("</body></html>")
    return "\n".join(md).rstrip() + "\n", "\n".join(ht) + "\n"


def write_report(summary: dict, md_path: str | Path, html_path: str | Path) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` (each atomically) from a ``vta group`` summary."""
    md, ht = render_report(summary)
    return (atomic_write_bytes(md_path, md.encode("utf-8")), atomic_write_bytes(html_path, ht.encode("utf-8")))
