"""Synthetic NAc/ALIC cohorts with a planted truth, written as a finished ``vta batch`` folder.

:func:`make_synthetic_cohort` draws a cohort of subject-hemispheres with leads near the
nucleus accumbens (tip in the NAc, trajectory through the anterior limb of the internal
capsule, as in NAc/ALIC DBS for addiction, Ge et al., Transl Psychiatry 2025), computes
each subject's |E| map and VTA, the activation of a synthetic ALIC fibre bundle, and an
outcome that depends on a known ("planted") region or fibre subset, and writes it all in
the batch folder format that ``vta group`` reads (see :mod:`vta.cohort`)::

    OUT/template.toml, OUT/manifest.csv   a real manifest (vta batch could recompute it)
    OUT/tracts/ALIC_bundle_<side>.npz     the fibre bundles that the subjects' configs name
    OUT/subjects/<subject>_<hemi>/        vta.nii.gz, efield_norm.nii.gz, tracts.csv, summary.json
    OUT/group.csv, OUT/vta_frequency.nii.gz, OUT/vta_fraction.nii.gz   (vta.studies.batch writes them)

**Fields** (:mod:`vta.cohort.synthetic_fields`). One real solve - the axisymmetric
finite-element basis of a SceneRay SR1242 (a SceneRay lead, as registered by the Tangdu
NAc/ALIC group, NCT03424616) in homogeneous 0.2 S/m tissue inside a grounded 30 mm
sphere, what ``vta run`` solves for the template - tabulated per contact on a lead-local
(r, z) grid and superposed per subject (exact in current mode). Against ``vta run`` of
the same configuration the |E| maps differ by a median 4e-4 (relative) and the VTAs are
the same (``tests/test_cohort_validation.py``). The VTA is ``|E| >= 0.2 V/mm``; each
subject image covers only the box ``vta run`` would write
(:func:`vta.activation.efield.auto_grid`); VTA volume and impedance in ``summary.json``
come from the basis.

**Placement.** Per hemisphere: the ``NAc_<side>`` target trajectory of the default
anatomy (:func:`vta.anatomy.targets.target_trajectory`), the tip jittered by
``N(0, tip_jitter_mm)`` per axis and the entry point (70 mm up the trajectory) by
``N(0, entry_jitter_mm)``; one or two active cathodic contacts drawn from
:data:`CONTACT_CHOICES` (weights :data:`CONTACT_WEIGHTS`: mostly at the NAc/ALIC border),
2-5 mA in total shared equally, 90 us, 130 Hz.

**Fibres.** The synthetic ALIC bundle of each side
(:func:`vta.activation.alic_bundle.default_alic_bundle`, 200 fibres, not tractography),
saved as ``tracts/ALIC_bundle_<side>.npz`` and named ``ALIC_bundle`` in the subjects'
configurations (as ``vta run`` names the default bundle; ``vta group`` tells the sides'
fibres apart by the subject folders). A fibre is
activated when it passes through the VTA (max |E| along the streamline >= the VTA
threshold; the VTA-intersection criterion of fibre filtering, Baldermann et al. 2019
Biol Psychiatry 85:735) and does not cross the lead body; ``threshold_factor`` =
threshold / max |E| (the multiple of the setting at which it would fire, capped at 2 as
``vta run`` does). ``tracts.csv`` lists the fibres within the ``vta run`` search radius
of the active contacts.

**Planted truth** (:class:`SyntheticTruth`). Per side, a sphere (radius
``region_radius_mm``, default 2 mm) near the NAc/ALIC border, 8.5 mm up the side's
nominal trajectory and 1 mm medially off it (:func:`planted_centre_mm`; the sides are
defined alike, so the left centre is close to, not exactly, the mirror image of the
right one: the default anatomy is not symmetric). The planted fibres of a side are the
bundle's fibres passing within ``fibre_radius_mm`` (1.25 mm) of a point in the ALIC 14 mm
up the trajectory, 1.5 mm medially (next to contact 2). Per subject, the *driver* is the mean
over its hemispheres of the fraction of the sphere inside the VTA (``effect="region"``)
or of the planted fibres activated (``effect="fibres"``); ``effect="none"`` has no
driver. The continuous outcome (``craving_reduction``, %) is::

    y = intercept + effect_size * driver + sum_c coef_c * (covariate_c - mean_c) + N(0, noise_sd)

and the binary one (``abstinent``) is 1 for the ``abstinent_fraction`` of subjects with
the highest ``y`` (e.g. 12 of 20). Covariates ``age`` (years) and ``years_of_use`` are drawn
and enter ``y`` only with nonzero ``covariate_effects``. ``missing_fraction`` of the subjects
get empty outcome cells; ``n_failed`` extra subjects appear in ``group.csv`` as failed runs.

Everything is deterministic for a given ``seed``. Lengths are mm, fields V/mm,
currents mA.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import VtaError
from ..io import OutputTransaction, atomic_write_bytes, nifti_bytes
from .synthetic_fields import (LEAD_MODEL, THRESHOLD_V_PER_MM, SyntheticLead, UnitFieldTable,
                               alic_bundle_points, fibre_activation, nominal_trajectories, planted_centre_mm,
                               sphere_offsets, subject_images, template_data, unit_field_table)

__all__ = ["CONTACT_CHOICES", "LEAD_MODEL", "SyntheticTruth", "UnitFieldTable", "dice",
           "fibre_precision_recall", "make_synthetic_cohort", "planted_centre_mm", "region_mask",
           "unit_field_table"]

log = logging.getLogger(__name__)

ENTRY_DISTANCE_MM = 70.0
#: Active-contact sets and their probabilities (SR1242 at the NAc target: contacts 0-1 in the
#: NAc, 2-3 in the ALIC; most settings use the contacts near the NAc/ALIC border, so that the
#: cohort's VTAs overlap there, as in clinical cohorts).
CONTACT_CHOICES: tuple[tuple[int, ...], ...] = ((1,), (0, 1), (1, 2), (0, 2), (2,), (0,), (2, 3))
CONTACT_WEIGHTS: tuple[float, ...] = (0.2, 0.2, 0.25, 0.1, 0.1, 0.1, 0.05)
#: Default planted-region centre: this far up the side's nominal NAc trajectory from the tip
#: (the NAc/ALIC border lies 7-10 mm up it in the default anatomy; contact 1 of the SR1242
#: spans 6.5-9.5 mm) and this far off it medially (mm).
REGION_AXIAL_MM, REGION_OFFSET_MM = 8.5, 1.0
#: Default planted-fibre centre: in the ALIC next to contact 2 (13.5-16.5 mm), medially (mm).
FIBRE_AXIAL_MM, FIBRE_OFFSET_MM = 14.0, 1.5
#: The tract name of both sides' bundles in tracts.csv (as ``vta run`` names the default
#: ALIC bundle; ``vta group`` tells the sides apart by the subject folders).
TRACT = "ALIC_bundle"
OUTCOME = "craving_reduction"
BINARY_OUTCOME = "abstinent"


# ----------------------------------------------------------------------------- the truth


@dataclass(frozen=True)
class SyntheticTruth:
    """What was planted in a synthetic cohort (see the module docstring).

    Attributes
    ----------
    batch_dir : Path
    effect : {"region", "fibres", "none"}
    outcome : str
        The column the planted effect drives (``"craving_reduction"``, or ``"abstinent"``
        when ``binary``).
    subjects : list of str
        Subject ids, in order (the failed extra subjects are not included).
    hemispheres : tuple of str
    region_centres_mm : dict
        Side -> planted sphere centre (3,) in MNI mm.
    region_radius_mm : float
    fibre_centres_mm : dict
        Side -> the point (MNI mm) that the planted fibres pass near.
    fibre_radius_mm : float
    planted_fibres : dict
        Side -> sorted streamline indices (int ndarray) of the planted fibres in that
        side's bundle.
    tract : str
        The tract name in ``tracts.csv`` (both sides: :data:`TRACT`).
    coefficients : dict
        ``intercept`` (%), ``effect_size`` (% per unit driver), ``noise_sd`` (%), and
        ``age`` / ``years_of_use`` (% per year; 0 when they do not enter the outcome).
    region_coverage : ndarray, shape (n_subjects, n_hemispheres)
        Fraction of the planted sphere inside each VTA.
    fibre_fraction : ndarray, shape (n_subjects, n_hemispheres)
        Fraction of the side's planted fibres activated.
    driver : ndarray, shape (n_subjects,)
        What drives the outcome (0 for ``effect="none"``).
    outcomes : dict
        Column -> (n_subjects,) float values before removing the missing ones.
    covariates : dict
        Column -> (n_subjects,) values.
    missing : list of str
        Subjects whose outcome cells are empty.
    failed : list of str
        Extra subjects listed as failed runs.
    abstinent_cut : float
        ``craving_reduction`` above which ``abstinent`` is 1 (%).
    seed : int
    seconds : float
        Wall time of the generation (s).
    """

    batch_dir: Path
    effect: str
    outcome: str
    subjects: list[str]
    hemispheres: tuple[str, ...]
    region_centres_mm: dict[str, np.ndarray]
    region_radius_mm: float
    fibre_centres_mm: dict[str, np.ndarray]
    fibre_radius_mm: float
    planted_fibres: dict[str, np.ndarray]
    tract: str
    coefficients: dict[str, float]
    region_coverage: np.ndarray
    fibre_fraction: np.ndarray
    driver: np.ndarray
    outcomes: dict[str, np.ndarray]
    covariates: dict[str, np.ndarray]
    missing: list[str]
    failed: list[str]
    abstinent_cut: float
    seed: int
    seconds: float = 0.0

    def region_mask(self, affine: np.ndarray, shape: Sequence[int], sides: Sequence[str] | None = None) -> np.ndarray:
        """The planted sphere(s) on a voxel grid (voxel centres within the radius).

        Parameters
        ----------
        affine : ndarray (4, 4)
            Voxel -> MNI mm.
        shape : 3 ints
        sides : sequence of {"R", "L"}, optional
            Which sides' spheres (default: the cohort's hemispheres).
        """
        sides = self.hemispheres if sides is None else tuple(sides)
        return region_mask([self.region_centres_mm[s] for s in sides], self.region_radius_mm, affine, shape)

    def region_dice(self, found: np.ndarray, affine: np.ndarray, sides: Sequence[str] | None = None) -> float:
        """Dice coefficient of a found mask (e.g. a FWE sweet spot on ``affine``'s grid)
        with the planted sphere(s) (:meth:`region_mask`)."""
        found = np.asarray(found, dtype=bool)
        return dice(found, self.region_mask(affine, found.shape, sides))

    def fibre_recovery(self, found: Sequence[int] | np.ndarray, side: str = "R") -> tuple[float, float]:
        """Precision and recall of found fibre indices of one side against the planted ones."""
        return fibre_precision_recall(found, self.planted_fibres.get(side, ()))


def region_mask(centres_mm: Sequence[Sequence[float]] | np.ndarray, radius_mm: float, affine: np.ndarray,
                shape: Sequence[int]) -> np.ndarray:
    """Boolean volume of the voxels whose centre lies within ``radius_mm`` of any centre.

    Parameters
    ----------
    centres_mm : (n, 3) or (3,) array
        World (MNI) mm.
    radius_mm : float
    affine : (4, 4) voxel -> world mm
    shape : 3 ints
    """
    centres = np.atleast_2d(np.asarray(centres_mm, float))
    ijk = np.indices(tuple(int(s) for s in shape)).reshape(3, -1).T
    xyz = ijk @ np.asarray(affine, float)[:3, :3].T + np.asarray(affine, float)[:3, 3]
    d2 = ((xyz[:, None, :] - centres[None]) ** 2).sum(-1).min(axis=1)
    return (d2 <= radius_mm ** 2).reshape(tuple(int(s) for s in shape))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice coefficient ``2 |A n B| / (|A| + |B|)`` of two boolean volumes (0 if both empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = int(a.sum() + b.sum())
    return 0.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def fibre_precision_recall(found: Sequence[int] | np.ndarray, planted: Sequence[int] | np.ndarray) -> tuple[float, float]:
    """Precision and recall of a set of fibre indices against the planted ones (NaN precision if none found)."""
    f, p = set(int(i) for i in np.ravel(found)), set(int(i) for i in np.ravel(planted))
    hits = len(f & p)
    return (hits / len(f) if f else float("nan")), (hits / len(p) if p else float("nan"))


# ----------------------------------------------------------------------------- the cohort


def _draw_leads(rng: np.random.Generator, subjects: list[str], hemispheres: Sequence[str], n_contacts: int,
                tip_jitter_mm: float, entry_jitter_mm: float, amplitude_mA: tuple[float, float]) -> list[SyntheticLead]:
    nominal = nominal_trajectories()
    leads = []
    for s in subjects:
        for side in hemispheres:
            tip0, d0 = nominal[side]
            tip = tip0 + rng.normal(0.0, tip_jitter_mm, 3)
            entry = tip0 + ENTRY_DISTANCE_MM * d0 + rng.normal(0.0, entry_jitter_mm, 3)
            choice = CONTACT_CHOICES[int(rng.choice(len(CONTACT_CHOICES), p=CONTACT_WEIGHTS))]
            total = float(rng.uniform(*amplitude_mA))
            currents = np.zeros(n_contacts)
            currents[list(choice)] = -round(total / len(choice), 2)
            leads.append(SyntheticLead(s, side, _round2(tip), _round2(entry), currents))
    return leads


def _round2(v: np.ndarray) -> np.ndarray:
    """Rounded to 0.01 mm exactly as the manifest's text will read back."""
    return np.array([float(f"{x:.2f}") for x in v])


def _outcomes(rng: np.random.Generator, driver: np.ndarray, covariates: dict[str, np.ndarray],
              coefficients: dict[str, float], abstinent_fraction: float) -> tuple[dict[str, np.ndarray], float]:
    n = len(driver)
    y = coefficients["intercept"] + coefficients["effect_size"] * driver
    for name, values in covariates.items():
        y = y + coefficients.get(name, 0.0) * (values - values.mean())
    y = np.round(y + rng.normal(0.0, coefficients["noise_sd"], n), 2)
    n_pos = int(round(abstinent_fraction * n))
    order = np.argsort(-y, kind="stable")
    abstinent = np.zeros(n)
    abstinent[order[:n_pos]] = 1.0
    cut = float(0.5 * (y[order[n_pos - 1]] + y[order[n_pos]])) if 0 < n_pos < n else float("nan")
    return {OUTCOME: y, BINARY_OUTCOME: abstinent}, cut


def _fmt(v: float) -> str:
    return f"{v:.6g}"


def _write_inputs(out: Path, leads: list[SyntheticLead], spacing_mm: float, variables: dict[str, dict[str, str]],
                  failed: list[str], hemispheres: Sequence[str], tract_files: dict[str, Path]) -> tuple[Path, Path]:
    """template.toml and manifest.csv (subject variables as extra columns)."""
    tpl = template_data(spacing_mm)
    lines = ["# Synthetic NAc/ALIC cohort (vta.cohort.synthetic): homogeneous 0.2 S/m tissue, a grounded",
             "# 30 mm sphere around the contacts (its centre per row), current mode.", ""]
    for section, values in tpl.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = " + (f'"{value}"' if isinstance(value, str) else
                                        "[" + ", ".join(_fmt(v) for v in value) + "]" if isinstance(value, list)
                                        else _fmt(value)))
        lines.append("")
    template = out / "template.toml"
    atomic_write_bytes(template, "\n".join(lines).encode("utf-8"))
    names = list(next(iter(variables.values())).keys()) if variables else []
    columns = ["subject", "hemisphere", "tip_mm", "entry_mm", "contacts", "domain.center_mm", "tracts.files", *names]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    from ..leads import get_lead

    ext = get_lead(LEAD_MODEL).level_extents_mm()
    middle = 0.5 * (ext[0][0] + ext[-1][1])
    for lead in leads:
        # the domain is centred on the lead axis (full precision: the case stays axisymmetric)
        centre = lead.placement.to_world(np.array([0.0, 0.0, middle]))
        rel = tract_files[lead.side].relative_to(out).as_posix()
        w.writerow([lead.subject, lead.side, ";".join(f"{v:.2f}" for v in lead.tip_mm),
                    ";".join(f"{v:.2f}" for v in lead.entry_mm),
                    ";".join(f"{k}:{lead.currents_mA[k]:g}" for k in lead.active),
                    "[" + ", ".join(repr(float(v)) for v in centre) + "]",
                    f'[{{ path = "{rel}", name = "{TRACT}" }}]',
                    *[variables[lead.subject].get(n, "") for n in names]])
    for s in failed:  # rows whose runs "failed": a placement outside the model (never computed)
        for side in hemispheres:
            w.writerow([s, side, "", "", "0:-3", "", "", *[variables.get(s, {}).get(n, "") for n in names]])
    manifest = out / "manifest.csv"
    atomic_write_bytes(manifest, buf.getvalue().encode("utf-8"))
    return template, manifest


def _summary(scene, table: UnitFieldTable, lead: SyntheticLead, grid, norm: np.ndarray, vta: np.ndarray, fib: dict,
             tract_name: str, n_fibres: int, seed: int) -> dict:
    from .. import __version__
    from ..fem.stimulation import Setting, resolve

    basis = table.basis
    state = resolve(Setting("current", {k: float(lead.currents_mA[k]) for k in lead.active}),
                    basis.conductance_S, basis.outer_grounded)
    model = scene.lead.model
    contacts = {str(c.index): {"active": c.index in lead.active, "current_mA": float(lead.currents_mA[c.index]),
                               "center_mm": scene.lead.placement.contact_center_mm(model, c.index).tolist()}
                for c in model.contacts()}
    n_act = int(fib["activated"].sum())
    return {
        "version": __version__,
        "vta_volume_mm3": float(basis.vta_volume_mm3(state.potentials_V, THRESHOLD_V_PER_MM)),
        "vta_clipped_by_domain": False,
        "vta_grid_volume_mm3": float(vta.sum() * grid.voxel_volume_mm3),
        "vta_clipped_by_grid": bool(vta[[0, -1]].any() or vta[:, [0, -1]].any() or vta[:, :, [0, -1]].any()),
        "threshold_V_per_mm": THRESHOLD_V_PER_MM,
        "impedance_ohm": float(state.impedance_ohm),
        "ground_current_mA": float(state.ground_current_mA),
        "contacts": contacts,
        "structures": {},
        "tracts": {tract_name: {
            "n_fibres": n_fibres, "n_simulated": int((fib["listed"] & ~fib["through_lead"]).sum()),
            "n_through_lead": int((fib["listed"] & fib["through_lead"]).sum()), "n_activated": n_act,
            "fraction_activated": n_act / n_fibres, "axon_model": "vta_intersection",
            "fiber_diameter_um": None, "axon_length_mm": None, "search_radius_mm": fib["radius_mm"],
            "source": "synthetic ALIC bundle (vta.activation.alic_bundle), not tractography"}},
        "field_max_on_grid_V_per_mm": float(norm.max()),
        "method": "axisymmetric",
        "mesh": dict(basis.mesh_info),
        "config": scene.resolved(),
        "coordinate_space": {"anatomy": None, "template": None, "lead": "mni", "outputs": "mni", "nifti_xform_code": 4},
        "warnings": [],
        "synthetic": {"generator": "vta.cohort.synthetic.make_synthetic_cohort", "seed": seed,
                      "field": f"1 mA (r, z) field tables of the axisymmetric {table.lead} basis, superposed and "
                               "interpolated bilinearly",
                      "fibre_activation": "max |E| along the streamline >= threshold (VTA intersection), not through "
                                          "the lead; threshold_factor = threshold / max |E|"},
    }


def _write_subject(subject_dir: Path, scene, table: UnitFieldTable, lead: SyntheticLead, spacing_mm: float,
                   n_fibres: int, bundle_seed: int, seed: int) -> None:
    from ..io import write_table

    model = scene.lead.model
    lead.placement = scene.lead.placement
    grid, norm, vta = subject_images(table, lead, model, spacing_mm)
    fib = lead.fibres
    tract = TRACT
    summary = _summary(scene, table, lead, grid, norm, vta, fib, tract, n_fibres, seed)
    rows = [{"tract": tract, "streamline": int(i), "distance_mm": float(fib["distance_mm"][i]),
             "through_lead": bool(fib["through_lead"][i]), "threshold_factor": float(fib["threshold_factor"][i]),
             "activated": bool(fib["activated"][i])} for i in np.flatnonzero(fib["listed"])]
    with OutputTransaction(subject_dir) as tx:
        write_table(rows or [{"tract": tract}], tx.path("tracts.csv"))
        for name, data in (("efield_norm.nii.gz", norm), ("vta.nii.gz", vta.astype(np.uint8))):
            with open(tx.path(name), "wb") as fh:
                fh.write(nifti_bytes(data, grid.affine, 4))
        summary["outputs"] = ["tracts.csv", "efield_norm.nii.gz", "vta.nii.gz", "summary.json"]
        tx.write_json("summary.json", summary)


def make_synthetic_cohort(
    out_dir: str | Path,
    n_subjects: int = 20,
    hemispheres: Sequence[str] = ("R", "L"),
    effect: str = "region",
    effect_size: float = 60.0,
    noise_sd: float = 10.0,
    binary: bool = False,
    covariates: bool = True,
    seed: int = 0,
    spacing_mm: float = 0.5,
    *,
    intercept: float = 20.0,
    abstinent_fraction: float = 0.6,
    covariate_effects: Mapping[str, float] | None = None,
    missing_fraction: float = 0.0,
    n_failed: int = 0,
    region_centres_mm: Mapping[str, Sequence[float]] | None = None,
    region_radius_mm: float = 2.0,
    fibre_radius_mm: float = 1.25,
    n_fibres: int = 200,
    bundle_seed: int = 0,
    tip_jitter_mm: float = 1.0,
    entry_jitter_mm: float = 3.0,
    amplitude_mA: tuple[float, float] = (2.0, 5.0),
) -> SyntheticTruth:
    """Write a synthetic NAc/ALIC cohort with a planted truth as a finished batch folder.

    See the module docstring for the model. About 30-45 ms per subject-hemisphere on
    2 cores (1000 in 33-44 s), most of it compressing the NIfTI files.

    Parameters
    ----------
    out_dir : str or Path
        The batch folder to write (created; an existing ``group.csv`` there is an error).
    n_subjects : int
        Patients (>= 4); each has one lead per hemisphere in ``hemispheres``.
    hemispheres : sequence of {"R", "L"}
    effect : {"region", "fibres", "none"}
        What drives the outcome.
    effect_size : float
        Outcome change (%) per unit driver (fraction of the region covered, or of the
        planted fibres activated, averaged over the hemispheres).
    noise_sd : float
        Standard deviation of the Gaussian outcome noise (%).
    binary : bool
        Whether the truth's ``outcome`` is the binary ``abstinent`` (both columns are
        always written).
    covariates : bool
        Write ``age`` (years) and ``years_of_use`` (years).
    seed : int
        Random seed (placements, settings, covariates, noise, missing cells).
    spacing_mm : float
        Voxel size of the subject images (mm).
    intercept : float
        Outcome at zero driver and mean covariates (%).
    abstinent_fraction : float
        Fraction of subjects with ``abstinent`` = 1 (the highest ``craving_reduction``).
    covariate_effects : mapping, optional
        ``{"age": b, "years_of_use": c}``: % per year, around the cohort mean.
    missing_fraction : float
        Fraction of subjects whose outcome cells (both outcome columns) are left empty.
    n_failed : int
        Extra subjects listed in ``group.csv`` with status ``failed`` and no outputs.
    region_centres_mm : mapping, optional
        Side -> planted sphere centre (MNI mm); default :func:`planted_centre_mm` with
        :data:`REGION_AXIAL_MM`, :data:`REGION_OFFSET_MM` (near the NAc/ALIC border).
    region_radius_mm : float
        Planted sphere radius (mm).
    fibre_radius_mm : float
        A side's fibres passing within this distance of its fibre centre
        (:func:`planted_centre_mm` with :data:`FIBRE_AXIAL_MM`, :data:`FIBRE_OFFSET_MM`:
        in the ALIC next to contact 2) are planted (mm).
    n_fibres, bundle_seed : int
        Synthetic ALIC bundle size and seed per side.
    tip_jitter_mm, entry_jitter_mm : float
        Standard deviations of the tip and entry-point jitter per axis (mm).
    amplitude_mA : (float, float)
        Range of the total cathodic current (mA), shared equally by the active contacts.

    Returns
    -------
    SyntheticTruth

    Raises
    ------
    VtaError
        Bad arguments, an output folder that already holds a batch.
    """
    t0 = time.perf_counter()
    if effect not in ("region", "fibres", "none"):
        raise VtaError(f"synthetic cohort: effect must be 'region', 'fibres' or 'none', got {effect!r}")
    hemispheres = tuple(hemispheres)
    if not hemispheres or any(h not in ("R", "L") for h in hemispheres) or len(set(hemispheres)) != len(hemispheres):
        raise VtaError(f"synthetic cohort: hemispheres must be distinct 'R'/'L', got {hemispheres}")
    if int(n_subjects) < 4:
        raise VtaError(f"synthetic cohort: need at least 4 subjects, got {n_subjects}")
    if not 0.0 <= missing_fraction < 1.0 or not 0.0 < abstinent_fraction < 1.0 or noise_sd < 0 or spacing_mm <= 0:
        raise VtaError("synthetic cohort: need 0 <= missing_fraction < 1, 0 < abstinent_fraction < 1, "
                       "noise_sd >= 0 and spacing_mm > 0")
    out = Path(out_dir)
    if (out / "group.csv").exists():
        raise VtaError(f"synthetic cohort: {out} already holds a batch (group.csv); give a new folder")
    (out / "tracts").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    width = max(2, len(str(n_subjects + n_failed)))
    subjects = [f"sub-{i + 1:0{width}d}" for i in range(n_subjects)]
    failed = [f"sub-{i + 1:0{width}d}" for i in range(n_subjects, n_subjects + int(n_failed))]
    table = unit_field_table(LEAD_MODEL)
    from ..leads import LeadPlacement, get_lead

    model = get_lead(LEAD_MODEL)
    leads = _draw_leads(rng, subjects, hemispheres, model.n_contacts, tip_jitter_mm, entry_jitter_mm, amplitude_mA)

    # the planted truth
    given = dict(region_centres_mm or {})
    centres = {s: np.asarray(given[s], float) if s in given else planted_centre_mm(s, REGION_AXIAL_MM, REGION_OFFSET_MM)
               for s in hemispheres}
    fibre_centres = {s: planted_centre_mm(s, FIBRE_AXIAL_MM, FIBRE_OFFSET_MM) for s in hemispheres}
    planted = {}
    for side in hemispheres:
        _, pts, _, starts = alic_bundle_points(side, n_fibres, bundle_seed)
        near = np.minimum.reduceat(np.linalg.norm(pts - fibre_centres[side], axis=1), starts) <= fibre_radius_mm
        planted[side] = np.flatnonzero(near)
        if effect == "fibres" and not near.any():
            raise VtaError(f"synthetic cohort: no {side} {TRACT} fibre passes within {fibre_radius_mm} mm of the "
                           "planted fibre centre; increase fibre_radius_mm")
    offsets = sphere_offsets(region_radius_mm)
    coverage = np.zeros(len(leads))
    fraction = np.zeros(len(leads))
    for i, lead in enumerate(leads):
        lead.placement = LeadPlacement.from_entry(lead.tip_mm, lead.entry_mm)
        e = table.field_norm(lead.placement.to_local(centres[lead.side] + offsets), lead.currents_mA)
        coverage[i] = float(np.mean(e >= THRESHOLD_V_PER_MM))
        fib = lead.fibres = fibre_activation(table, lead, model, n_fibres, bundle_seed)
        ids = planted[lead.side]
        fraction[i] = float(fib["activated"][ids].mean()) if len(ids) else 0.0
    coverage = coverage.reshape(n_subjects, len(hemispheres))
    fraction = fraction.reshape(n_subjects, len(hemispheres))
    driver = {"region": coverage.mean(1), "fibres": fraction.mean(1), "none": np.zeros(n_subjects)}[effect]

    cov = {}
    if covariates:
        age = np.round(np.clip(rng.normal(40.0, 8.0, n_subjects), 22.0, 65.0), 0)
        cov = {"age": age, "years_of_use": np.round(np.maximum(1.0, (age - 18.0) * rng.uniform(0.3, 0.8, n_subjects)), 1)}
    effects = dict(covariate_effects or {})
    unknown = sorted(set(effects) - set(cov))
    if unknown:
        raise VtaError(f"synthetic cohort: covariate_effects names {unknown[0]!r}; known: {', '.join(cov) or 'none'}")
    coefficients = {"intercept": float(intercept), "effect_size": float(effect_size) if effect != "none" else 0.0,
                    "noise_sd": float(noise_sd), **{c: float(effects.get(c, 0.0)) for c in cov}}
    outcomes, cut = _outcomes(rng, driver, cov, coefficients, abstinent_fraction)
    n_missing = int(round(missing_fraction * n_subjects))
    missing = sorted(rng.choice(subjects, n_missing, replace=False).tolist()) if n_missing else []
    variables: dict[str, dict[str, str]] = {}
    for i, s in enumerate(subjects):
        v = {OUTCOME: "" if s in missing else _fmt(outcomes[OUTCOME][i]),
             BINARY_OUTCOME: "" if s in missing else str(int(outcomes[BINARY_OUTCOME][i]))}
        variables[s] = {**v, **{c: _fmt(cov[c][i]) for c in cov}}
    for s in failed:
        variables[s] = {OUTCOME: "", BINARY_OUTCOME: "", **{c: "" for c in cov}}

    # the batch folder
    from ..activation.tract_io import save_tract
    from ..studies.batch import SUBJECTS_DIR, SubjectResult, config_hash, write_group_outputs
    from ..studies.manifest import load_manifest

    tract_files = {}
    for side in hemispheres:
        tract_files[side] = out / "tracts" / f"{TRACT}_{side}.npz"
        save_tract(alic_bundle_points(side, n_fibres, bundle_seed)[0], tract_files[side])
    template, manifest_path = _write_inputs(out, leads, spacing_mm, variables, failed, hemispheres, tract_files)
    manifest = load_manifest(manifest_path, template)
    by_name = {lead.name: lead for lead in leads}
    hashes, results = {}, {}
    for spec in manifest.subjects:
        if spec.subject in failed:
            results[spec.key] = SubjectResult(spec.subject, spec.hemisphere, "failed",
                                              "synthetic failure: this subject was not computed")
            continue
        scene = spec.scene()
        _write_subject(out / SUBJECTS_DIR / spec.name, scene, table, by_name[spec.name], spacing_mm,
                       n_fibres, bundle_seed, seed)
        hashes[spec.key] = config_hash(scene)
    write_group_outputs(manifest, out, hashes, results)
    truth = SyntheticTruth(
        batch_dir=out, effect=effect, outcome=BINARY_OUTCOME if binary else OUTCOME, subjects=subjects,
        hemispheres=hemispheres, region_centres_mm=centres, region_radius_mm=float(region_radius_mm),
        fibre_centres_mm=fibre_centres, fibre_radius_mm=float(fibre_radius_mm), planted_fibres=planted, tract=TRACT,
        coefficients=coefficients, region_coverage=coverage,
        fibre_fraction=fraction, driver=driver, outcomes=outcomes, covariates=cov, missing=missing, failed=failed,
        abstinent_cut=cut, seed=int(seed), seconds=time.perf_counter() - t0)
    log.info("synthetic cohort: %d subjects x %d hemispheres (effect %s) written to %s in %.1f s", n_subjects,
             len(hemispheres), effect, out, truth.seconds)
    return truth
