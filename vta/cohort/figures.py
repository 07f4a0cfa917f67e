"""Figures of the cohort analysis: predicted vs observed outcomes, fibres by statistic.

* :func:`prediction_figure`: cross-validated predicted vs observed outcome (identity and
  regression lines; r and its permutation p in the title); for a binary outcome a second
  panel with the ROC curve of the predicted values and its AUC.
* :func:`fibre_figure`: the tract's streamlines, tested fibres coloured by their
  statistic (diverging colour map centred on 0, colour bar); FWE-significant fibres
  thick, the others thin grey; all other streamlines of the tract faint, for context. An
  offscreen pyvista render; where offscreen OpenGL does not work (or with
  ``backend="matplotlib"``) two matplotlib projections (sagittal and axial).

Matplotlib draws on its Agg canvas (no display, no global backend change). Every PNG is
written atomically (temporary file, then rename).
"""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..errors import VtaError
from ..io import atomic_path
from .fibres import FibreMatrix, FibreStats
from .predict import Prediction

__all__ = ["prediction_figure", "fibre_figure", "roc_curve", "FIBRE_CMAP"]

log = logging.getLogger(__name__)

#: Diverging colour map of the fibre statistic (blue: activation goes with a lower
#: outcome, red: with a higher one).
FIBRE_CMAP = "coolwarm"
_CONTEXT = "#c8c8c8"
_NONSIG = "#8c8c8c"


def _save(fig, path: Path, dpi: float) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, facecolor="white")
    return path


def _p_text(p: float | None, permutations: int) -> str:
    if p is None or not np.isfinite(p):
        return "p n/a"
    smallest = p <= 1.0 / (permutations + 1) + 1e-12
    return f"p = {p:.2g} (smallest possible)" if smallest else f"p = {p:.3g}"


# ----------------------------------------------------------------------------- prediction


def roc_curve(values: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC points (false positive rate, true positive rate) of ``values`` for the class
    ``labels == 1``, one point per distinct value (descending) plus (0, 0); straight lines
    between them enclose the Mann-Whitney AUC (ties count half)."""
    values = np.asarray(values, float)
    labels = np.asarray(labels) > 0.5
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        raise VtaError("ROC curve needs both classes")
    thresholds = np.unique(values)[::-1]
    tp = np.array([np.count_nonzero(labels & (values >= t)) for t in thresholds])
    fp = np.array([np.count_nonzero(~labels & (values >= t)) for t in thresholds])
    return np.concatenate([[0.0], fp / n_neg]), np.concatenate([[0.0], tp / n_pos])


def prediction_figure(pred: Prediction, path: str | Path, outcome: str = "outcome", title: str | None = None,
                      dpi: float = 150.0) -> Path:
    """Predicted vs observed outcome (and the ROC curve for a binary outcome) as a PNG.

    Parameters
    ----------
    pred : Prediction
        From :func:`vta.cohort.predict.cross_validated_prediction`.
    path : path
        Output PNG (written atomically).
    outcome : str
        Outcome name for the axis labels.
    title : str, optional
        First title line (default: what was predicted from what).
    dpi : float

    Returns
    -------
    Path
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    binary = pred.binary and pred.auc is not None
    fig = Figure(figsize=(10.5 if binary else 6.0, 5.2), dpi=dpi, facecolor="white", layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 2 if binary else 1, 1)
    obs, prd = pred.observed, pred.predicted
    x = obs.copy()
    if binary:  # spread the two classes sideways, deterministically
        x = obs + (np.random.default_rng(0).random(len(obs)) - 0.5) * 0.25
    ax.scatter(x, prd, s=28, c="#2b6cb0", edgecolor="white", linewidth=0.6, zorder=3)
    lo = float(min(obs.min(), prd.min()))
    hi = float(max(obs.max(), prd.max()))
    pad = 0.05 * (hi - lo if hi > lo else 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], ls="--", color="#888888", lw=1, label="identity", zorder=1)
    if np.ptp(obs) > 0:
        b, a = np.polyfit(obs, prd, 1)
        xs = np.array([obs.min(), obs.max()])
        ax.plot(xs, a + b * xs, color="#c53030", lw=1.6, label="least-squares fit", zorder=2)
    ax.set_xlabel(f"observed {outcome}" + (" (0/1, jittered)" if binary else ""))
    ax.set_ylabel(f"predicted {outcome} (cross-validated)")
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    ax.grid(alpha=0.25)
    cv = "leave-one-out" if pred.folds == "loo" else f"{pred.n_folds}-fold"
    ax.set_title(f"r = {pred.r:.2f}, permutation {_p_text(pred.r_p_perm, pred.permutations)}", fontsize=10)
    if binary:
        ax2 = fig.add_subplot(1, 2, 2)
        fpr, tpr = roc_curve(prd, obs)
        ax2.plot(fpr, tpr, color="#2b6cb0", lw=2, drawstyle="default")
        ax2.fill_between(fpr, tpr, alpha=0.12, color="#2b6cb0")
        ax2.plot([0, 1], [0, 1], ls="--", color="#888888", lw=1)
        ax2.set_xlim(0, 1)
        ax2.set_ylim(0, 1.02)
        ax2.set_aspect("equal")
        ax2.set_xlabel("false positive rate")
        ax2.set_ylabel("true positive rate")
        ax2.set_title(f"ROC: AUC = {pred.auc:.2f}, permutation {_p_text(pred.auc_p_perm, pred.permutations)}",
                      fontsize=10)
        ax2.grid(alpha=0.25)
    head = title or f"{outcome}: {cv} prediction ({'t' if pred.test == 't' else 'rank'} statistic, {pred.statistic})"
    # wrapped to the figure's width (about 9.5 characters per inch at 11 pt): a long
    # outcome name must not push the title off the canvas
    head = "\n".join(textwrap.wrap(head, width=max(40, int(9.5 * fig.get_figwidth()))))
    fig.suptitle(f"{head}\n{len(obs)} units, {pred.n_features} features, {pred.permutations} permutations",
                 fontsize=11)
    out = _save(fig, Path(path), dpi)
    log.info("wrote %s", out)
    return out


# ----------------------------------------------------------------------------- fibres


def _lines_by_fibre(streamlines: Mapping[str, Sequence[np.ndarray]] | Sequence[np.ndarray],
                    fibres: FibreMatrix) -> tuple[list[np.ndarray | None], list[np.ndarray]]:
    """Coordinates of each fibre of ``fibres`` (None where unknown) and every streamline."""
    if isinstance(streamlines, Mapping):
        by_side = {str(k): list(v) for k, v in streamlines.items()}
    else:
        by_side = {"": list(streamlines)}
    everything = [np.asarray(s, float) for v in by_side.values() for s in v]
    out: list[np.ndarray | None] = []
    for h, s in zip(fibres.hemisphere, fibres.streamline):
        lines = by_side.get(str(h))
        if lines is None and len(by_side) == 1:
            lines = next(iter(by_side.values()))
        out.append(np.asarray(lines[s], float) if lines is not None and 0 <= s < len(lines) else None)
    return out, everything


def fibre_figure(path: str | Path, streamlines: Mapping[str, Sequence[np.ndarray]] | Sequence[np.ndarray],
                 fibres: FibreMatrix, stats: FibreStats, title: str | None = None, backend: str = "auto",
                 size: tuple[int, int] = (1400, 1000)) -> Path:
    """The tract's fibres coloured by their outcome statistic, as a PNG.

    Parameters
    ----------
    path : path
        Output PNG (written atomically).
    streamlines : mapping or sequence
        Streamline coordinates, world mm: ``{"R": [(n_i, 3) arrays], "L": [...]}`` keyed
        by the fibres' hemisphere (:func:`vta.cohort.fibres.tract_streamlines`), or one
        list for all; indexed by :attr:`FibreMatrix.streamline`.
    fibres : FibreMatrix
    stats : FibreStats
        From :func:`vta.cohort.fibres.fibre_filter` on ``fibres``.
    title : str, optional
    backend : {"auto", "pyvista", "matplotlib"}
        ``"auto"``: pyvista offscreen, matplotlib projections if that fails.
    size : (int, int)
        Width and height in pixels (the matplotlib projections keep the width and
        choose the height for two square panels).

    Returns
    -------
    Path

    Raises
    ------
    VtaError
        Mismatched inputs, no coordinates for any tested fibre, an unknown backend, or
        (``backend="pyvista"``) no offscreen rendering.
    """
    if backend not in ("auto", "pyvista", "matplotlib"):
        raise VtaError(f"unknown backend {backend!r} (use auto, pyvista, matplotlib)")
    if len(stats.stat) != fibres.n_fibres:
        raise VtaError(f"fibre statistics for {len(stats.stat)} fibres but the matrix has {fibres.n_fibres}")
    lines, context = _lines_by_fibre(streamlines, fibres)
    tested = np.isfinite(stats.stat)
    missing = int(sum(1 for j, l in enumerate(lines) if l is None and tested[j]))
    if missing:
        log.warning("fibre figure: no coordinates for %d tested fibres of %s (streamline index out of range)",
                    missing, fibres.tract)
    if not any(l is not None for j, l in enumerate(lines) if tested[j]):
        raise VtaError(f"fibre figure: no coordinates for any tested fibre of {fibres.tract}")
    finite = np.abs(stats.stat[tested])
    vmax = float(finite.max()) if len(finite) and finite.max() > 0 else 1.0
    label = "t" if stats.test == "t" else "z"
    n_sig = int(stats.significant.sum())
    head = title or f"{fibres.tract}: fibre statistic vs outcome"
    sub = (f"{n_sig} of {int(tested.sum())} tested fibres significant (FWE {stats.alpha:g}, "
           f"{stats.permutations} permutations); thick: significant" if n_sig else
           f"no fibre significant (FWE {stats.alpha:g}, {stats.permutations} permutations): "
           f"all {int(tested.sum())} tested fibres coloured")
    path = Path(path)
    if backend in ("auto", "pyvista"):
        try:
            return _fibres_pyvista(path, lines, context, fibres, stats, vmax, label, head, sub, size)
        except Exception as exc:  # noqa: BLE001 - rendering is optional; fall back
            if backend == "pyvista":
                raise VtaError(f"fibre figure: offscreen rendering failed ({str(exc).splitlines()[0][:200]})") from None
            log.warning("fibre figure: pyvista rendering failed (%s); drawing matplotlib projections instead",
                        str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)
    return _fibres_matplotlib(path, lines, context, fibres, stats, vmax, label, head, sub, size)


def _groups(lines, stats: FibreStats):
    """(significant, other tested) fibre indices with coordinates."""
    have = np.array([l is not None for l in lines], dtype=bool)
    tested = np.isfinite(stats.stat) & have
    sig = np.flatnonzero(tested & stats.significant)
    other = np.flatnonzero(tested & ~stats.significant)
    return sig, other


def _view(lines, fibres: FibreMatrix, picks: np.ndarray) -> str:
    """``"R"``/``"L"`` lateral view when the tested fibres lie on one side, else ``"top"``."""
    sides = {str(fibres.hemisphere[j]) for j in picks}
    if sides in ({"R"}, {"L"}):
        return sides.pop()
    xs = np.concatenate([lines[j][:, 0] for j in picks]) if len(picks) else np.zeros(1)
    if np.all(xs >= 0):
        return "R"
    if np.all(xs <= 0):
        return "L"
    return "top"


_VIEW_TEXT = {"R": "right lateral view (anterior to the right)", "L": "left lateral view (anterior to the left)",
              "top": "view from above (anterior up, patient's right on the right)"}


def _fibres_pyvista(path: Path, lines, context, fibres, stats, vmax, label, head, sub, size) -> Path:
    from ..views.gl import check_rendering

    check_rendering()
    import pyvista as pv

    def poly(arrs: list[np.ndarray], values: np.ndarray | None = None):
        pts = np.concatenate(arrs)
        cells, k = [], 0
        for a in arrs:
            cells.append(np.concatenate([[len(a)], np.arange(k, k + len(a))]))
            k += len(a)
        mesh = pv.PolyData(pts, lines=np.concatenate(cells))
        if values is not None:
            mesh.point_data[label] = np.repeat(values, [len(a) for a in arrs])
        return mesh

    sig, other = _groups(lines, stats)
    width, height = int(size[0]), int(size[1])
    plotter = pv.Plotter(off_screen=True, window_size=(width, height))
    try:
        plotter.set_background("white")
        bar = dict(title=f"{label} (activated vs not)", vertical=True, position_x=0.9, position_y=0.15,
                   height=0.6, width=0.04, color="black", fmt="%.1f", n_labels=5, title_font_size=18,
                   label_font_size=15)
        if context:
            plotter.add_mesh(poly(context), color=_CONTEXT, line_width=1, opacity=0.35)
        if len(sig):
            if len(other):
                plotter.add_mesh(poly([lines[j] for j in other]), color=_NONSIG, line_width=1.5, opacity=0.8)
            plotter.add_mesh(poly([lines[j] for j in sig], stats.stat[sig]), scalars=label, cmap=FIBRE_CMAP,
                             clim=(-vmax, vmax), line_width=7, render_lines_as_tubes=True, scalar_bar_args=bar)
        else:
            plotter.add_mesh(poly([lines[j] for j in other], stats.stat[other]), scalars=label, cmap=FIBRE_CMAP,
                             clim=(-vmax, vmax), line_width=2.5, scalar_bar_args=bar)
        picks = np.concatenate([sig, other]).astype(int)
        view = _view(lines, fibres, picks)
        if view == "top":
            plotter.view_xy()
        else:
            plotter.view_yz(negative=(view == "L"))
        plotter.camera.zoom(1.2)
        plotter.add_text(f"{head}\n{sub}\n{_VIEW_TEXT[view]}", position="upper_left", font_size=11, color="black")
        with atomic_path(path) as tmp:
            plotter.screenshot(str(tmp), transparent_background=False)
    finally:
        plotter.close()
    log.info("wrote %s (pyvista, %dx%d)", path, width, height)
    return path


def _fibres_matplotlib(path: Path, lines, context, fibres, stats, vmax, label, head, sub, size) -> Path:
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    sig, other = _groups(lines, stats)
    dpi = 100.0
    fig = Figure(figsize=(size[0] / dpi, 0.52 * size[0] / dpi), dpi=dpi, facecolor="white")  # two square panels
    FigureCanvasAgg(fig)
    norm = Normalize(-vmax, vmax)
    cmap = colormaps[FIBRE_CMAP]
    panels = (("sagittal projection (anterior to the right)", 1, 2, "y (mm)", "z (mm)"),
              ("axial projection (anterior up)", 0, 1, "x (mm)", "y (mm)"))
    axes = [fig.add_axes((0.06 + i * 0.45, 0.1, 0.38, 0.74)) for i in range(2)]
    for ax, (name, a, b, xl, yl) in zip(axes, panels):
        if context:
            ax.add_collection(LineCollection([c[:, [a, b]] for c in context], colors=_CONTEXT, linewidths=0.5,
                                             alpha=0.5))
        if len(sig):
            ax.add_collection(LineCollection([lines[j][:, [a, b]] for j in other], colors=_NONSIG, linewidths=0.8))
            ax.add_collection(LineCollection([lines[j][:, [a, b]] for j in sig], colors=cmap(norm(stats.stat[sig])),
                                             linewidths=2.6))
        else:
            ax.add_collection(LineCollection([lines[j][:, [a, b]] for j in other],
                                             colors=cmap(norm(stats.stat[other])), linewidths=1.2))
        pts = np.concatenate([lines[j] for j in np.concatenate([sig, other]).astype(int)])
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        pad = 0.05 * float(max(hi[a] - lo[a], hi[b] - lo[b], 1.0))
        half = 0.5 * float(max(hi[a] - lo[a], hi[b] - lo[b])) + pad
        ca, cb = 0.5 * (lo[a] + hi[a]), 0.5 * (lo[b] + hi[b])
        ax.set_xlim(ca - half, ca + half)
        ax.set_ylim(cb - half, cb + half)
        ax.set_aspect("equal", adjustable="box")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.grid(alpha=0.2)
    from matplotlib.cm import ScalarMappable

    cax = fig.add_axes((0.93, 0.15, 0.015, 0.64))
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=cax, label=f"{label} (activated vs not)")
    fig.suptitle(f"{head}\n{sub}", fontsize=11)
    out = _save(fig, path, dpi)
    log.info("wrote %s (matplotlib projections)", out)
    return out
