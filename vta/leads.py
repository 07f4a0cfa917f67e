"""DBS lead catalogue, contact geometry and lead placement in world coordinates.

The catalogue is one table of data (``vta/data/leads.csv``); every lead model is a row.
Geometry follows the OSS-DBS v2 convention (``ossdbs/electrodes`` in
github.com/SFB-ELAINE/OSS-DBSv2; each row's ``source`` column cites its dimensions):

* the lead's local frame has its distal end (the *tip*) at the origin and its axis
  along +z, pointing from the tip towards the entry point;
* the distal end is a hemisphere of radius ``diameter/2``;
* ``tip_length_mm`` is the distance from the distal end to the distal edge of the first
  ring contact; if the tip itself is a contact it spans ``[0, tip_length_mm]``;
* contacts are numbered from 0 at the most distal contact; segments of a directional
  level are numbered counter-clockwise about +z, segment ``s`` of a level centred at
  ``rotation + 120 s`` degrees from the local +x axis (the lead's marker direction),
  each spanning ``segment_arc_deg`` (90 degrees by default, i.e. 30 degree gaps).

All lengths are in mm, angles in degrees.
"""

from __future__ import annotations

import csv
import functools
import math
from dataclasses import dataclass
from importlib import resources
from typing import Sequence

import numpy as np

from .errors import VtaError, did_you_mean

__all__ = [
    "ContactGeometry",
    "LeadModel",
    "LeadPlacement",
    "custom_lead",
    "get_lead",
    "lead_catalogue",
]


@dataclass(frozen=True)
class ContactGeometry:
    """One contact of a lead in the lead's local frame.

    Attributes
    ----------
    index : int
        Contact number, 0 = most distal.
    level : int
        Level number along the lead, 0 = most distal.
    z_start_mm, z_end_mm : float
        Axial extent from the distal end of the lead (mm), ``z_start_mm < z_end_mm``.
    angle_center_deg : float or None
        Centre of a segment's arc about the lead axis from local +x (degrees), or
        ``None`` for a full ring.
    arc_deg : float or None
        Angular width of a segment (degrees), ``None`` for a full ring.
    is_tip : bool
        True if the contact includes the hemispherical tip (ActiveTip, Vercise
        Directed).
    radius_mm : float
        Lead radius (mm).
    """

    index: int
    level: int
    z_start_mm: float
    z_end_mm: float
    angle_center_deg: float | None
    arc_deg: float | None
    is_tip: bool
    radius_mm: float

    @property
    def is_ring(self) -> bool:
        """True for a full-circumference contact (ring or tip)."""
        return self.arc_deg is None

    @property
    def center_z_mm(self) -> float:
        """Axial position of the contact's centre from the distal end (mm)."""
        if self.is_tip:
            return 0.5 * self.z_end_mm
        return 0.5 * (self.z_start_mm + self.z_end_mm)

    @property
    def area_mm2(self) -> float:
        """Exposed surface area of the contact (mm^2)."""
        r = self.radius_mm
        if self.is_tip:
            # hemisphere plus the cylindrical part above it
            return 2.0 * math.pi * r * r + 2.0 * math.pi * r * max(self.z_end_mm - r, 0.0)
        length = self.z_end_mm - self.z_start_mm
        arc = 360.0 if self.arc_deg is None else self.arc_deg
        return math.radians(arc) * r * length


#: Most contacts a lead may have. Clinical DBS leads have 4 to 16 (e.g. Boston
#: Scientific Vercise Cartesia HX: 16); the cap keeps a mistyped custom lead from
#: meshing for minutes (time and memory grow with the contact count).
MAX_CONTACTS = 64


@dataclass(frozen=True)
class LeadModel:
    """A lead model: dimensions of one catalogue row (or a custom lead).

    Attributes
    ----------
    name : str
        Canonical model name, e.g. ``"Medtronic 3389"``.
    manufacturer : str
    levels : tuple of int
        Number of contacts per level from distal to proximal (1 = ring, 3 = segmented).
    contact_length_mm : float
        Axial length of each contact (mm).
    gaps_mm : tuple of float
        Insulating gap between consecutive levels (mm), one per gap.
    diameter_mm : float
        Lead diameter (mm).
    tip_length_mm : float
        Distal end to distal edge of the first non-tip contact (mm).
    tip_is_contact : bool
        Whether level 0 is the conductive tip.
    body_length_mm : float
        Length of the insulating body (mm).
    segment_arc_deg : float
        Arc of each directional segment (degrees).
    aliases : tuple of str
    source : str
        Where the dimensions come from.
    """

    name: str
    manufacturer: str
    levels: tuple[int, ...]
    contact_length_mm: float
    gaps_mm: tuple[float, ...]
    diameter_mm: float
    tip_length_mm: float
    tip_is_contact: bool = False
    body_length_mm: float = 400.0
    segment_arc_deg: float = 90.0
    aliases: tuple[str, ...] = ()
    source: str = "custom"

    def __post_init__(self) -> None:
        if len(self.levels) == 0 or any(n not in (1, 3) for n in self.levels):
            raise VtaError(f"lead '{self.name}': levels must be 1 (ring) or 3 (segmented), got {self.levels}")
        if sum(self.levels) > MAX_CONTACTS:
            raise VtaError(f"lead '{self.name}': {sum(self.levels)} contacts; vta models leads with at most "
                           f"{MAX_CONTACTS} contacts (clinical DBS leads have 4-16)")
        if len(self.gaps_mm) != len(self.levels) - 1:
            raise VtaError(
                f"lead '{self.name}': {len(self.levels)} levels need {len(self.levels) - 1} gaps, "
                f"got {len(self.gaps_mm)}"
            )
        positive = {
            "diameter_mm": self.diameter_mm,
            "contact_length_mm": self.contact_length_mm,
            "tip_length_mm": self.tip_length_mm,
            "body_length_mm": self.body_length_mm,
        }
        for key, value in positive.items():
            if not (value > 0 and math.isfinite(value)):
                raise VtaError(f"lead '{self.name}': {key} must be positive, got {value}")
        if any(not (g > 0) for g in self.gaps_mm):
            raise VtaError(f"lead '{self.name}': gaps must be positive, got {self.gaps_mm}")
        if self.tip_is_contact and self.levels[0] != 1:
            raise VtaError(f"lead '{self.name}': a conductive tip must be a single contact")
        if not self.tip_is_contact and self.tip_length_mm < self.radius_mm:
            raise VtaError(
                f"lead '{self.name}': tip_length_mm {self.tip_length_mm} is shorter than the tip radius"
            )
        if not 0 < self.segment_arc_deg < 120:
            raise VtaError(f"lead '{self.name}': segment_arc_deg must be in (0, 120)")
        if self.contacts()[-1].z_end_mm >= self.body_length_mm:
            raise VtaError(f"lead '{self.name}': contacts extend beyond the body length")

    @property
    def radius_mm(self) -> float:
        """Lead radius (mm)."""
        return 0.5 * self.diameter_mm

    @property
    def n_contacts(self) -> int:
        """Number of electrical contacts."""
        return int(sum(self.levels))

    @property
    def is_directional(self) -> bool:
        """True if any level is segmented."""
        return any(n > 1 for n in self.levels)

    @property
    def is_axisymmetric(self) -> bool:
        """True if every contact is a full ring (or the tip)."""
        return not self.is_directional

    def level_extents_mm(self) -> list[tuple[float, float]]:
        """Axial extent ``(z_start, z_end)`` of each level from the distal end (mm)."""
        extents = []
        if self.tip_is_contact:
            extents.append((0.0, self.tip_length_mm))
            z = self.tip_length_mm + self.gaps_mm[0]
            rest = range(1, len(self.levels))
        else:
            z = self.tip_length_mm
            rest = range(len(self.levels))
        for i in rest:
            extents.append((z, z + self.contact_length_mm))
            if i < len(self.gaps_mm):
                z += self.contact_length_mm + self.gaps_mm[i]
        return extents

    @functools.cache
    def contacts(self) -> tuple[ContactGeometry, ...]:
        """Geometry of every contact in the lead's local frame (rotation lives in
        :class:`LeadPlacement`)."""
        out = []
        index = 0
        for level, ((z0, z1), n_seg) in enumerate(zip(self.level_extents_mm(), self.levels)):
            is_tip = self.tip_is_contact and level == 0
            for s in range(n_seg):
                if n_seg == 1:
                    angle, arc = None, None
                else:
                    angle, arc = 120.0 * s, self.segment_arc_deg
                out.append(ContactGeometry(index, level, z0, z1, angle, arc, is_tip, self.radius_mm))
                index += 1
        return tuple(out)

    def contact(self, index: int) -> ContactGeometry:
        """One contact by number; a clear error if it does not exist."""
        if not isinstance(index, (int, np.integer)) or not 0 <= index < self.n_contacts:
            raise VtaError(
                f"contact index {index} is out of range for '{self.name}' "
                f"(contacts 0..{self.n_contacts - 1})"
            )
        return self.contacts()[int(index)]

    @property
    def active_span_mm(self) -> float:
        """Distal edge of the first contact to the proximal edge of the last (mm)."""
        ext = self.level_extents_mm()
        return ext[-1][1] - ext[0][0]


def _parse_levels(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split("-"))


def _parse_row(row: dict[str, str]) -> LeadModel:
    levels = _parse_levels(row["levels"])
    gaps = [float(x) for x in row["gaps_mm"].split(";")]
    if len(gaps) == 1:
        gaps = gaps * (len(levels) - 1)
    return LeadModel(
        name=row["model"],
        manufacturer=row["manufacturer"],
        levels=levels,
        contact_length_mm=float(row["contact_length_mm"]),
        gaps_mm=tuple(gaps),
        diameter_mm=float(row["diameter_mm"]),
        tip_length_mm=float(row["tip_length_mm"]),
        tip_is_contact=row["tip_is_contact"].strip().lower() == "true",
        body_length_mm=float(row["body_length_mm"]),
        segment_arc_deg=float(row["segment_arc_deg"]) if row["segment_arc_deg"] else 90.0,
        aliases=tuple(a.strip() for a in row["aliases"].split(";") if a.strip()),
        source=row["source"],
    )


@functools.cache
def lead_catalogue() -> dict[str, LeadModel]:
    """All catalogue leads by canonical name, in table order."""
    text = resources.files("vta").joinpath("data/leads.csv").read_text(encoding="utf-8")
    rows = csv.DictReader(text.splitlines())
    return {lead.name: lead for lead in map(_parse_row, rows)}


def _normalise(name: str) -> str:
    return " ".join(name.lower().replace("_", " ").replace("-", " ").split())


def get_lead(name: str) -> LeadModel:
    """Look up a lead model by name or alias (case-insensitive).

    Raises
    ------
    VtaError
        For an unknown model, naming the closest catalogue entries.
    """
    wanted = _normalise(str(name))
    names: dict[str, LeadModel] = {}
    for lead in lead_catalogue().values():
        for key in (lead.name, *lead.aliases):
            names[_normalise(key)] = lead
    if wanted in names:
        return names[wanted]
    hint = did_you_mean(str(name), [k for lead in lead_catalogue().values() for k in (lead.name, *lead.aliases)])
    raise VtaError(f"unknown lead model '{name}'{hint} (see `vta leads`)")


def custom_lead(
    name: str,
    *,
    levels: Sequence[int],
    contact_length_mm: float,
    gaps_mm: float | Sequence[float],
    diameter_mm: float,
    tip_length_mm: float,
    tip_is_contact: bool = False,
    body_length_mm: float = 400.0,
    segment_arc_deg: float = 90.0,
) -> LeadModel:
    """Build a lead from its dimensions (mm); same conventions as the catalogue."""
    levels = tuple(int(n) for n in levels)
    if isinstance(gaps_mm, (int, float)):
        gaps = (float(gaps_mm),) * (len(levels) - 1)
    else:
        gaps = tuple(float(g) for g in gaps_mm)
    return LeadModel(
        name=name,
        manufacturer="custom",
        levels=levels,
        contact_length_mm=float(contact_length_mm),
        gaps_mm=gaps,
        diameter_mm=float(diameter_mm),
        tip_length_mm=float(tip_length_mm),
        tip_is_contact=bool(tip_is_contact),
        body_length_mm=float(body_length_mm),
        segment_arc_deg=float(segment_arc_deg),
        source="custom",
    )


def _unit(v: Sequence[float], what: str) -> np.ndarray:
    a = np.asarray(v, dtype=float)
    if a.shape != (3,) or not np.all(np.isfinite(a)):
        raise VtaError(f"{what} must be three finite numbers, got {list(np.ravel(v))}")
    n = float(np.linalg.norm(a))
    if n < 1e-12:
        raise VtaError(f"{what} must not be the zero vector")
    return a / n


@dataclass(frozen=True)
class LeadPlacement:
    """Where a lead sits in world (e.g. MNI) space.

    Attributes
    ----------
    tip_mm : ndarray, shape (3,)
        World position of the lead's distal end (mm).
    direction : ndarray, shape (3,)
        Unit vector from the tip towards the entry point.
    rotation_deg : float
        Rotation about the lead axis (degrees). At 0 the local +x axis (segment 0 of a
        directional level, the marker) points along world +y (anterior) projected on
        the plane normal to the axis, or along world +x if the lead runs along y.
    """

    tip_mm: np.ndarray
    direction: np.ndarray
    rotation_deg: float = 0.0

    def __init__(self, tip_mm: Sequence[float], direction: Sequence[float], rotation_deg: float = 0.0):
        tip = np.asarray(tip_mm, dtype=float)
        if tip.shape != (3,) or not np.all(np.isfinite(tip)):
            raise VtaError(f"lead tip_mm must be three finite numbers, got {list(np.ravel(tip_mm))}")
        object.__setattr__(self, "tip_mm", tip)
        object.__setattr__(self, "direction", _unit(direction, "lead direction"))
        object.__setattr__(self, "rotation_deg", float(rotation_deg))

    @classmethod
    def from_entry(cls, tip_mm: Sequence[float], entry_mm: Sequence[float], rotation_deg: float = 0.0) -> "LeadPlacement":
        """Placement from a tip and an entry point (both world mm)."""
        tip = np.asarray(tip_mm, dtype=float)
        return cls(tip, np.asarray(entry_mm, dtype=float) - tip, rotation_deg)

    @property
    def frame(self) -> np.ndarray:
        """Rotation matrix whose columns are the local x, y, z axes in world coordinates."""
        z = self.direction
        ref = np.array([0.0, 1.0, 0.0])
        if abs(float(z @ ref)) > 0.99:
            ref = np.array([1.0, 0.0, 0.0])
        x0 = ref - (ref @ z) * z
        x0 /= np.linalg.norm(x0)
        y0 = np.cross(z, x0)
        a = math.radians(self.rotation_deg)
        x = math.cos(a) * x0 + math.sin(a) * y0
        y = np.cross(z, x)
        return np.column_stack([x, y, z])

    def to_world(self, local_mm: np.ndarray) -> np.ndarray:
        """Map points (..., 3) from the lead's local frame to world mm."""
        return np.asarray(local_mm, dtype=float) @ self.frame.T + self.tip_mm

    def to_local(self, world_mm: np.ndarray) -> np.ndarray:
        """Map world points (..., 3) in mm to the lead's local frame."""
        return (np.asarray(world_mm, dtype=float) - self.tip_mm) @ self.frame

    def contact_center_mm(self, lead: LeadModel, index: int) -> np.ndarray:
        """World position (mm) of a contact's centre on the lead surface axis/arc."""
        c = lead.contact(index)
        if c.is_ring:
            local = np.array([0.0, 0.0, c.center_z_mm])
        else:
            a = math.radians(c.angle_center_deg)
            local = np.array([c.radius_mm * math.cos(a), c.radius_mm * math.sin(a), c.center_z_mm])
        return self.to_world(local)

    def to_dict(self) -> dict:
        """Plain-data form for summaries."""
        return {
            "tip_mm": [float(v) for v in self.tip_mm],
            "direction": [float(v) for v in self.direction],
            "rotation_deg": self.rotation_deg,
        }
