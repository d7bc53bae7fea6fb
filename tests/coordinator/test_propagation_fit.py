"""The propagation analysis's log-distance fit, against losses made here from the model it
fits (free space at 1 m, an exponent, seeded shadowing): the exponent and the shadowing come
back; free space gives an exponent of 2 and no shadowing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drift.orchestrator.analysis.propagation import fit_log_distance, free_space_loss_db

F = 435e6
LAMBDA = 299_792_458.0 / F


def test_free_space_losses_fit_an_exponent_of_two_without_shadowing():
    d = np.array([150.0, 600.0, 1200.0, 2500.0, 5000.0])
    friis = 20 * np.log10(4 * math.pi * d / LAMBDA)
    fit = fit_log_distance(d, friis, F)
    assert fit.exponent == pytest.approx(2.0, abs=1e-9)
    assert fit.shadowing_sigma_db == pytest.approx(0.0, abs=1e-9)
    assert fit.reference_loss_db == pytest.approx(20 * math.log10(4 * math.pi / LAMBDA))
    assert free_space_loss_db(1000.0, F) == pytest.approx(
        20 * math.log10(4 * math.pi * 1000 / LAMBDA)
    )


def test_the_exponent_and_the_shadowing_come_back_from_many_receivers():
    rng = np.random.default_rng(5)
    d = 10 ** rng.uniform(2, 4, 400)
    pl0 = 20 * math.log10(4 * math.pi / LAMBDA)
    losses = pl0 + 10 * 3.4 * np.log10(d) + rng.normal(0, 6.0, d.size)
    fit = fit_log_distance(d, losses, F)
    assert fit.exponent == pytest.approx(3.4, abs=3 * fit.exponent_std)
    assert fit.exponent_std < 0.02
    assert fit.shadowing_sigma_db == pytest.approx(6.0, rel=0.1)
    assert fit.receivers == 400
