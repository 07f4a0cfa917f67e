"""Time-domain stimulation: the real pulse in dispersive tissue, by Fourier synthesis.

The field of a periodic pulse train in a linear, dispersive volume conductor is solved
in the frequency domain - one unit solution per solve frequency - and brought back to
the time domain by summing the waveform's harmonics, each weighted by the solution at
its frequency. The signal side of that, free of any FEM:

- :mod:`vta.timedomain.signal`: the waveforms (rectangular, biphasic, passive
  recharge, user csv), their exact Fourier coefficients, and the ``[signal]`` table.
- :mod:`vta.timedomain.spectrum`: the harmonics up to a cut-off, the frequency plans
  (``full``, ``octave``, ``adaptive``) that choose where to solve, and the synthesis.

The frequency-domain field (complex conductivity, unit solutions per frequency,
contact phasors) is in the package's other modules.
"""

from .signal import (SHAPES, SPECTRUM_METHODS, SignalConfig, Waveform, biphasic, from_csv, parse_signal,
                     passive_recharge, rectangular)
from .spectrum import (FrequencyPlan, Spectrum, cutoff_harmonic, make_plan, octave_bands, plan_adaptive,
                       plan_full, plan_octave, spectrum, synthesis_error)

__all__ = [
    "SHAPES", "SPECTRUM_METHODS", "SignalConfig", "Waveform", "biphasic", "from_csv", "parse_signal",
    "passive_recharge", "rectangular",
    "FrequencyPlan", "Spectrum", "cutoff_harmonic", "make_plan", "octave_bands", "plan_adaptive", "plan_full",
    "plan_octave", "spectrum", "synthesis_error",
]
