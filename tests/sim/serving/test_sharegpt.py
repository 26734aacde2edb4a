"""The ShareGPT-like lengths generator: its means against vLLM's published ShareGPT figures
(SOSP 2023, Fig. 11a) within sampling error, the truncated-lognormal mean against numerical
integration, determinism, bounds, and its use as a serving workload."""

import math

import numpy as np
import pytest

from sim.cli.main import main
from sim.serving.run import requests_for
from sim.serving.sharegpt import CAP, SIGMA, log_mean_for, sharegpt_lengths, truncated_mean


@pytest.mark.parametrize("which, published", [(0, 161.31), (1, 337.99)])
def test_means_match_the_published_figures_within_sampling_error(which, published):
    n = 40_000
    x = sharegpt_lengths(n, np.random.default_rng(1))[which]
    se = x.std(ddof=1) / math.sqrt(n)
    assert abs(x.mean() - published) < 4 * se  # 4 standard errors: a 1-in-15,000 false alarm
    assert x.min() >= 1 and x.max() <= CAP


def test_truncated_mean_against_numerical_integration():
    mu = 5.0
    x = np.linspace(1e-6, CAP, 400_001)
    pdf = np.exp(-(np.log(x) - mu) ** 2 / (2 * SIGMA**2)) / (x * SIGMA * math.sqrt(2 * math.pi))
    dx = x[1] - x[0]
    numeric = (x * pdf).sum() * dx / (pdf.sum() * dx)
    assert truncated_mean(mu, SIGMA, CAP) == pytest.approx(numeric, rel=1e-4)
    assert truncated_mean(log_mean_for(161.31), SIGMA, CAP) == pytest.approx(160.81)


def test_deterministic_for_a_seed():
    a = sharegpt_lengths(100, np.random.default_rng(7))
    b = sharegpt_lengths(100, np.random.default_rng(7))
    c = sharegpt_lengths(100, np.random.default_rng(8))
    assert all((u == v).all() for u, v in zip(a, b))
    assert not (a[0] == c[0]).all()


def test_a_serving_workload_at_a_rate():
    reqs = requests_for("sharegpt", rate=5.0, duration_s=400.0, seed=3)
    assert reqs == requests_for("sharegpt", rate=5.0, duration_s=400.0, seed=3)
    # Poisson: 2000 expected, standard deviation sqrt(2000) = 45
    assert abs(len(reqs) - 2000) < 4 * math.sqrt(2000)
    assert all(0 <= r.arrival_s < 400 for r in reqs)
    assert [r.id for r in reqs] == list(range(len(reqs)))


def test_sharegpt_without_a_rate_exits_2_one_line(capsys):
    assert main(["serve", "--trace", "sharegpt", "--duration", "5"]) == 2
    err = capsys.readouterr().err
    assert "--rate" in err and "sharegpt" in err and len(err.strip().splitlines()) == 1
