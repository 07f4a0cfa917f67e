TITLE MRG mammalian myelinated-axon node, written for the vta test suite

COMMENT
Nodal membrane of McIntyre CC, Richardson AG, Grill WM, J Neurophysiol 2002;87:995
(fast Na, persistent Na, slow K, leak), from the rate equations of the paper's appendix:
rate constants at 20 C (mp, m, h) and 36 C (s) scaled by Q10 factors 2.2 (mp, m),
2.9 (h) and 3.0 (s). Used only to validate vta.axons against NEURON.
ENDCOMMENT

NEURON {
    SUFFIX mrgnode
    NONSPECIFIC_CURRENT inaf, inap, iks, ileak
    RANGE gnafbar, gnapbar, gksbar, gleak, ena, ek, eleak
}

UNITS {
    (mA) = (milliamp)
    (mV) = (millivolt)
    (S) = (siemens)
}

PARAMETER {
    gnafbar = 3.0 (S/cm2)
    gnapbar = 0.01 (S/cm2)
    gksbar = 0.08 (S/cm2)
    gleak = 0.007 (S/cm2)
    ena = 50.0 (mV)
    ek = -90.0 (mV)
    eleak = -90.0 (mV)
}

ASSIGNED {
    v (mV)
    celsius (degC)
    inaf (mA/cm2)
    inap (mA/cm2)
    iks (mA/cm2)
    ileak (mA/cm2)
    qm
    qh
    qs
}

STATE { mp m h s }

BREAKPOINT {
    SOLVE gates METHOD cnexp
    inaf = gnafbar * m * m * m * h * (v - ena)
    inap = gnapbar * mp * mp * mp * (v - ena)
    iks = gksbar * s * (v - ek)
    ileak = gleak * (v - eleak)
}

UNITSOFF

INITIAL {
    qm = 2.2 ^ ((celsius - 20) / 10)
    qh = 2.9 ^ ((celsius - 20) / 10)
    qs = 3.0 ^ ((celsius - 36) / 10)
    mp = a_mp(v) / (a_mp(v) + b_mp(v))
    m = a_m(v) / (a_m(v) + b_m(v))
    h = a_h(v) / (a_h(v) + b_h(v))
    s = a_s(v) / (a_s(v) + b_s(v))
}

DERIVATIVE gates {
    mp' = a_mp(v) - (a_mp(v) + b_mp(v)) * mp
    m' = a_m(v) - (a_m(v) + b_m(v)) * m
    h' = a_h(v) - (a_h(v) + b_h(v)) * h
    s' = a_s(v) - (a_s(v) + b_s(v)) * s
}

: A * y / (1 - exp(-y / k)), continuous at y = 0
FUNCTION lin(A, y, k) {
    if (fabs(y / k) < 1e-6) {
        lin = A * k
    } else {
        lin = A * y / (1 - exp(-y / k))
    }
}

FUNCTION a_mp(v) { a_mp = qm * lin(0.01, v + 27, 10.2) }
FUNCTION b_mp(v) { b_mp = qm * lin(0.00025, -(v + 34), 10) }
FUNCTION a_m(v) { a_m = qm * lin(1.86, v + 21.4, 10.3) }
FUNCTION b_m(v) { b_m = qm * lin(0.086, -(v + 25.7), 9.16) }
FUNCTION a_h(v) { a_h = qh * lin(0.062, -(v + 114), 11) }
FUNCTION b_h(v) { b_h = qh * 2.3 / (1 + exp(-(v + 31.8) / 13.4)) }
FUNCTION a_s(v) { a_s = qs * 0.3 / (1 + exp(-(v + 53) / 5)) }
FUNCTION b_s(v) { b_s = qs * 0.03 / (1 + exp(-(v + 90))) }

UNITSON
