"""Settings from the conductance matrix: floating contacts, modes, impedance."""

import numpy as np
import pytest

from vta import VtaError
from vta.fem.stimulation import Setting, monopolar_impedances_ohm, resolve


def resistor_network_G(n=4, seed=0, grounded=True):
    """Conductance matrix of a random resistor network (S) between n contacts (+ ground)."""
    rng = np.random.default_rng(seed)
    C = rng.uniform(1e-4, 1e-3, size=(n, n))
    C = np.triu(C, 1)
    C = C + C.T
    G = -C
    np.fill_diagonal(G, C.sum(axis=1))
    if grounded:
        G += np.diag(rng.uniform(5e-4, 2e-3, size=n))
    return G


def test_current_monopolar_floating_contacts_carry_no_current():
    G = resistor_network_G()
    s = resolve(Setting("current", {1: -1.0}), G, True)
    np.testing.assert_allclose(s.currents_mA, [0, -1, 0, 0], atol=1e-12)
    assert s.ground_current_mA == pytest.approx(1.0)
    assert s.impedance_ohm == pytest.approx(s.potentials_V[1] / -1e-3)
    assert s.impedance_ohm == pytest.approx(monopolar_impedances_ohm(G, True)[1])


def test_voltage_mode_and_linearity():
    G = resistor_network_G()
    a = resolve(Setting("voltage", {0: -1.0}), G, True)
    b = resolve(Setting("voltage", {0: -3.0}), G, True)
    np.testing.assert_allclose(b.potentials_V, 3 * a.potentials_V)
    assert a.currents_mA[1:] == pytest.approx([0, 0, 0], abs=1e-12)
    assert a.impedance_ohm == pytest.approx(b.impedance_ohm)
    assert a.impedance_ohm == pytest.approx(-1.0 / (a.currents_mA[0] * 1e-3))


def test_current_and_voltage_modes_agree():
    G = resistor_network_G()
    v = resolve(Setting("voltage", {2: -2.0, 3: 1.0}), G, True)
    i = resolve(Setting("current", {2: v.currents_mA[2], 3: v.currents_mA[3]}), G, True)
    np.testing.assert_allclose(i.potentials_V, v.potentials_V, rtol=1e-10)


def test_bipolar_insulating_outer():
    G = resistor_network_G(grounded=False)
    s = resolve(Setting("voltage", {0: -1.0, 3: 1.0}), G, False)
    assert s.currents_mA.sum() == pytest.approx(0, abs=1e-12)
    assert s.ground_current_mA == 0.0
    assert s.impedance_ohm == pytest.approx(2.0 / (abs(s.currents_mA[0]) * 1e-3))
    c = resolve(Setting("current", {0: -1.0, 3: 1.0}), G, False)
    np.testing.assert_allclose(c.currents_mA, [-1, 0, 0, 1], atol=1e-9)
    with pytest.raises(VtaError, match="must sum to zero"):
        resolve(Setting("current", {0: -1.0}), G, False)
    with pytest.raises(VtaError, match="drives no current"):
        resolve(Setting("voltage", {0: -1.0}), G, False)
    assert np.isnan(monopolar_impedances_ohm(G, False)).all()


def test_errors():
    G = resistor_network_G()
    with pytest.raises(VtaError, match="contact index 7 is out of range"):
        resolve(Setting("current", {7: -1.0}), G, True)
    with pytest.raises(VtaError, match="mode"):
        Setting("power", {0: 1.0})
