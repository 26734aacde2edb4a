"""ShareGPT-like request lengths: a seeded generator of prompt and output token counts whose
means are the ShareGPT figures published with vLLM, for workloads without a trace of their own
(``--trace sharegpt --rate R``; `sim.serving.run.requests_for`).

Source: Kwon et al., "Efficient Memory Management for Large Language Model Serving with
PagedAttention" (vLLM), SOSP 2023, Fig. 11(a): ShareGPT prompts average 161.31 tokens and
outputs 337.99 tokens (8.4x and 5.8x Alpaca's). Alchemist (Huang et al., arXiv 2503.01066)
samples its training inputs from the same dataset.

The paper gives the means and histograms, not a fitted law, so the shape is pdsim's choice:
each length is ``ceil(X)``, X lognormal with log-standard deviation `SIGMA` (1.0: a heavy
right tail, coefficient of variation 1.3 before truncation) truncated to ``X <= CAP``
(1,024 tokens each, vLLM's benchmark limit on a prompt), with the log-mean solved so that the
truncated mean plus the ceiling's half token is the published mean. Prompt and output are
drawn independently. Deterministic for a seed (`numpy.random.Generator`).
"""

from __future__ import annotations

import math

import numpy as np

#: Published means (tokens), vLLM (SOSP 2023) Fig. 11(a).
MEAN_PROMPT_TOKENS = 161.31
MEAN_OUTPUT_TOKENS = 337.99
#: pdsim's choices (module docstring): the lognormal's log-standard deviation and the cap.
SIGMA = 1.0
CAP = 1024


def _phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def truncated_mean(mu: float, sigma: float, cap: float) -> float:
    """Mean of a lognormal(``mu``, ``sigma``) conditioned on ``X <= cap``:
    ``exp(mu + sigma^2 / 2) Phi((ln cap - mu - sigma^2) / sigma) / Phi((ln cap - mu) / sigma)``."""
    z = (math.log(cap) - mu) / sigma
    return math.exp(mu + sigma**2 / 2) * _phi(z - sigma) / _phi(z)


def log_mean_for(mean: float, sigma: float = SIGMA, cap: float = CAP) -> float:
    """The ``mu`` whose truncated lognormal, rounded up to whole tokens, has mean ``mean``
    (the ceiling adds half a token on average); bisection, the mean rising with ``mu``."""
    target = mean - 0.5
    if not 0 < target < cap:
        raise ValueError(f"mean {mean} tokens is outside (0.5, {cap + 0.5})")
    lo, hi = -10.0, math.log(cap) + 10 * sigma
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if truncated_mean(mid, sigma, cap) < target else (lo, mid)
    return (lo + hi) / 2


def draw_lengths(n: int, mean: float, rng: np.random.Generator, *, sigma: float = SIGMA,
                 cap: int = CAP) -> np.ndarray:
    """``n`` token counts (int64, in [1, cap]) of mean ``mean`` (module docstring); draws
    above ``cap`` are redrawn (truncation)."""
    mu = log_mean_for(mean, sigma, cap)
    x = rng.lognormal(mu, sigma, n)
    while (over := x > cap).any():
        x[over] = rng.lognormal(mu, sigma, int(over.sum()))
    return np.maximum(1, np.ceil(x)).astype(np.int64)


def sharegpt_lengths(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` ShareGPT-like (prompt, output) token counts: prompts first, then outputs."""
    return (draw_lengths(n, MEAN_PROMPT_TOKENS, rng), draw_lengths(n, MEAN_OUTPUT_TOKENS, rng))
