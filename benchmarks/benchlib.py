"""What every benchmark shares: two cores and the machine facts.

Import it first (``import benchlib``): it pins the process to two cores and sets the
thread counts of numpy/numba/BLAS before those libraries start their thread pools, as
the CI machine has 2 cores. ``machine()`` returns the facts recorded with each result.
(``peer_ossdbs.py`` runs under the OSS-DBS venv with the standard library only and keeps
its own copy.)
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

try:
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:2])
except (AttributeError, OSError):
    pass
for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def cpu_model() -> str:
    """The CPU model name (Linux /proc/cpuinfo), else what the platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="ignore").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict:
    """CPU, cores used, load, platform and the versions of the numerical stack."""
    import numba
    import numpy as np
    import scipy

    versions = {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
                "numba": numba.__version__}
    for name, module in (("scikit-fem", "skfem"), ("pyamg", "pyamg")):
        try:
            versions[name] = getattr(__import__(module), "__version__", "?")
        except ImportError:
            pass
    return {
        "cpu_model": cpu_model(),
        "cores_used": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        **versions,
    }
