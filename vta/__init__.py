"""vta: finite-element modelling of deep brain stimulation.

Place a lead in anatomy, solve the electric field once per contact, and get the volume
of tissue activated (VTA) for any stimulation setting by exact superposition.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import ConfigError, VtaError
from .leads import LeadModel, LeadPlacement, custom_lead, get_lead, lead_catalogue

__all__ = [
    "ConfigError",
    "LeadModel",
    "LeadPlacement",
    "VtaError",
    "__version__",
    "custom_lead",
    "get_lead",
    "lead_catalogue",
]
