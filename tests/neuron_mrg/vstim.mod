TITLE Extracellular stimulus: e_extracellular = amp * ve_unit (vta test suite)

COMMENT
ve_unit (mV) is the extracellular potential of a segment for the unit stimulus; the
global amp (scale x waveform value of the coming time step) is set from Python before
each fadvance. ex points to the segment's e_extracellular and is written before the
currents of every step are evaluated.
ENDCOMMENT

NEURON {
    SUFFIX vstim
    RANGE ve_unit
    GLOBAL amp
    POINTER ex
}

UNITS { (mV) = (millivolt) }

PARAMETER {
    ve_unit = 0 (mV)
    amp = 0 (1)
}

ASSIGNED { ex (mV) }

INITIAL { ex = amp * ve_unit }

BEFORE BREAKPOINT { ex = amp * ve_unit }
