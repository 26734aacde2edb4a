"""Autoregressive speculative decoding: a draft model proposes, the target verifies.

One *round* (after both models' prefills): the draft runs ``gamma`` one-token decode steps
over the shared context ``c`` (contexts ``c .. c + gamma - 1``), then the target runs one
*verify* step of ``gamma + 1`` new tokens per sequence over ``c`` cached ones (a causal
multi-token step, `mappers.lower.causal_pairs`). Of the ``gamma`` drafted tokens the target
accepts a prefix of ``n`` and adds one of its own (the correction, or the bonus token when all
are accepted), so a round produces ``n + 1`` tokens and the context grows by ``n + 1``, not by
one (Leviathan et al. 2023, "Fast Inference from Transformers via Speculative Decoding").

Acceptance model: each drafted token is accepted i.i.d. with rate ``A``, so
``P(n = i) = A^i (1 - A)`` for ``i < gamma`` and ``P(n = gamma) = A^gamma``, and the expected
tokens per verify step are ``(1 - A^(gamma + 1)) / (1 - A)`` (``gamma + 1`` at ``A = 1``).
Counts are sampled per round with ``numpy.random.default_rng(seed)``, or read from a file of
per-round accepted draft counts (cycled when the run needs more rounds than it lists).

Conventions and simplifications (docs/speculative.md):
- A batch moves in lock step: every sequence of a round accepts the same count, so each step
  stays a uniform batch (a ragged verify per sequence is future work).
- Both prefills run one after the other before the first round (the target's yields the
  first output token); the draft's runs on the draft system.
- Step costs are linear in the context under the roofline; each step kind (draft decode,
  verify, plain decode) is simulated at up to ``samples`` evenly spaced contexts and linearly
  interpolated in between, as ``pdsim run --decode-sample`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mappers.ir import Phase
from mappers.models import ModelConfig
from sim.engine import Workload, main_unit
from sim.errors import ConfigError
from sim.hardware import System
from sim.step import compile_step

#: Largest draft length ``--gamma auto`` considers.
MAX_AUTO_GAMMA = 16


def expected_tokens(accept: float, gamma: int) -> float:
    """Expected tokens per verify step under i.i.d. acceptance ``accept`` (Leviathan et al.
    2023, eq. 1): ``(1 - A^(gamma + 1)) / (1 - A)``."""
    if accept >= 1.0:
        return float(gamma + 1)
    return (1.0 - accept ** (gamma + 1)) / (1.0 - accept)


def check_accept(accept: float) -> float:
    if not (0.0 <= accept <= 1.0):  # also refuses NaN
        raise ConfigError(f"--accept: the per-token acceptance rate must be in [0, 1], "
                          f"got {accept}")
    return accept


def check_gamma(gamma: int) -> int:
    if gamma < 1:
        raise ConfigError(f"--gamma: draft tokens per round must be >= 1 or 'auto', got {gamma}")
    return gamma


def sample_accepted(accept: float, gamma: int, rounds: int, seed: int) -> np.ndarray:
    """Accepted draft tokens (0..gamma) of ``rounds`` rounds, i.i.d. acceptance ``accept``:
    the failures before the first rejection of a Bernoulli(1 - A) sequence, capped at
    ``gamma``."""
    check_accept(accept)
    check_gamma(gamma)
    if accept >= 1.0:
        return np.full(rounds, gamma, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.minimum(rng.geometric(1.0 - accept, size=rounds) - 1, gamma).astype(np.int64)


def read_accept_file(path: str | Path, gamma: int) -> np.ndarray:
    """Per-round accepted draft counts from ``path`` (integers 0..gamma separated by white
    space or commas; ``#`` starts a comment; `sim.files.read_counts`)."""
    from sim.files import read_counts

    return np.array(read_counts(path, "--accept-file", 0, gamma), dtype=np.int64)


@dataclass(frozen=True, slots=True)
class StepCurve:
    """One step kind's time (s), energy (J), FLOPs and DRAM bytes, linear in the context
    between the simulated contexts ``at``."""

    at: np.ndarray
    time_s: np.ndarray
    energy_j: np.ndarray
    flops: np.ndarray
    dram_bytes: np.ndarray
    unit: str  # the unit busiest over the step (`sim.engine.main_unit`)

    def __call__(self, field: str, context) -> np.ndarray:
        return np.interp(context, self.at, getattr(self, field))


def step_curve(model: ModelConfig, system: System, workload: Workload, new_tokens: int,
               lo: int, hi: int, samples: int, detail: str) -> StepCurve:
    """Simulate one-phase decode steps of ``new_tokens`` per sequence at up to ``samples``
    contexts from ``lo`` to ``hi`` (inclusive)."""
    at = np.unique(np.linspace(lo, hi, min(samples, hi - lo + 1)).round().astype(np.int64))
    rows, units = [], []
    for c in at:
        s = compile_step(model, system, phase=Phase.DECODE, batch=workload.batch,
                         new_tokens=new_tokens, context=int(c), precision=workload.precision,
                         detail=detail)
        rows.append((s.time_s, s.energy_j, s.graph.total("flops"), s.dram_bytes))
        units.append(main_unit(s))
    cols = np.array(rows, dtype=float).T
    return StepCurve(at.astype(float), *cols, unit=max(sorted(set(units)), key=units.count))


@dataclass(frozen=True, slots=True)
class SpecResult:
    """Rounds of a speculative run (arrays, one entry per round) and its summary."""

    contexts: np.ndarray      # target context at the start of each round
    accepted: np.ndarray      # accepted draft tokens per round
    produced: np.ndarray      # output tokens per round (accepted + 1, capped at the end)
    draft_s: np.ndarray       # draft time per round (gamma decode steps)
    verify_s: np.ndarray      # verify step time per round
    summary: dict
    steps: dict               # per-step columns (`step_columns`), docs/trace-format.md


def best_gamma(target: ModelConfig, draft: ModelConfig, system: System, draft_system: System,
               workload: Workload, accept: float, detail: str) -> tuple[int, dict[int, float]]:
    """The draft length maximising expected tokens per second at the mid-run context, and
    the expected speed-up over plain decode of each ``gamma`` in 1..`MAX_AUTO_GAMMA`."""
    mid = workload.prompt_tokens + workload.gen_tokens // 2

    def t(model, sys_, q):
        return compile_step(model, sys_, phase=Phase.DECODE, batch=workload.batch,
                            new_tokens=q, context=mid, precision=workload.precision,
                            detail=detail).time_s
    plain, t_draft = t(target, system, 1), t(draft, draft_system, 1)
    speedup = {g: expected_tokens(accept, g) * plain / (g * t_draft + t(target, system, g + 1))
               for g in range(1, MAX_AUTO_GAMMA + 1)}
    return max(speedup, key=speedup.get), speedup


def _check_fits(target: ModelConfig, system: System, draft: ModelConfig,
                draft_system: System, workload: Workload, gamma: int) -> None:
    """Target and draft weights and KV caches (up to ``gamma`` tokens past the request, the
    last verify step's) must fit: on one system together, or each on its own."""
    from dataclasses import replace

    from sim.engine import _check_capacity, footprint
    held = replace(workload, gen_tokens=workload.gen_tokens + gamma)
    tw, tkv = footprint(target, system, held)
    dw, dkv = footprint(draft, draft_system, held)
    if draft_system == system:
        _check_capacity(system, tw + dw, tkv + dkv, 0)
    else:
        _check_capacity(system, tw, tkv, 0)
        _check_capacity(draft_system, dw, dkv, 0)


def simulate_speculative(target: ModelConfig, system: System, draft: ModelConfig,
                         draft_system: System, workload: Workload, *, gamma: int | None,
                         accept: float | None = None, counts: np.ndarray | None = None,
                         seed: int = 0, detail: str = "tile", samples: int = 9,
                         check_capacity: bool = True) -> SpecResult:
    """Simulate ``workload`` with ``draft`` on ``draft_system`` proposing ``gamma`` tokens a
    round (None: the best for ``accept``, `best_gamma`) and ``target`` on ``system``
    verifying; acceptance from rate ``accept`` or per-round ``counts``. See the module
    docstring; summary keys in docs/speculative.md."""
    if (accept is None) == (counts is None):
        raise ConfigError("--accept/--accept-file: give exactly one with --draft")
    if accept is not None:
        check_accept(accept)
    sweep = None
    if gamma is None:
        if accept is None:
            raise ConfigError("--gamma: 'auto' needs --accept (a rate), not --accept-file")
        gamma, sweep = best_gamma(target, draft, system, draft_system, workload, accept,
                                  detail)
    check_gamma(gamma)
    if draft.vocab_size != target.vocab_size:
        raise ConfigError(f"--draft: {draft.name} has a vocabulary of {draft.vocab_size}, "
                          f"{target.name} of {target.vocab_size}; they must share one")
    if check_capacity:
        _check_fits(target, system, draft, draft_system, workload, gamma)
    p, gen = workload.prompt_tokens, workload.gen_tokens
    hi = p + gen + gamma  # the last round may look past the end
    if accept is not None:
        # at least one token per round: gen - 1 rounds always suffice
        counts = sample_accepted(accept, gamma, max(gen - 1, 1), seed)

    def prefill(model, sys_):
        return compile_step(model, sys_, phase=Phase.PREFILL, batch=workload.batch,
                            new_tokens=p, context=0, precision=workload.precision,
                            detail=detail)
    t_pre, d_pre = prefill(target, system), prefill(draft, draft_system)
    plain = step_curve(target, system, workload, 1, p, hi, samples, detail)
    dstep = step_curve(draft, draft_system, workload, 1, p, hi, samples, detail)
    verify = step_curve(target, system, workload, gamma + 1, p, hi, samples, detail)

    ctx, made, acc, prod = [], 1, [], []
    c = p
    i = 0
    while made < gen:
        n = int(counts[i % len(counts)])
        tok = min(n + 1, gen - made)
        ctx.append(c)
        acc.append(n)
        prod.append(tok)
        c += tok
        made += tok
        i += 1
    ctx_a, acc_a, prod_a = (np.array(v, dtype=np.int64) for v in (ctx, acc, prod))
    offsets = np.arange(gamma)
    draft_ctx = ctx_a[:, None] + offsets[None, :]
    draft_s = dstep("time_s", draft_ctx).sum(axis=1)
    verify_s = verify("time_s", ctx_a)
    plain_ctx = p + np.arange(gen - 1)
    plain_decode_s = float(plain("time_s", plain_ctx).sum())
    spec_decode_s = float(draft_s.sum() + verify_s.sum())
    energy = float(dstep("energy_j", draft_ctx).sum() + verify("energy_j", ctx_a).sum())
    flops = float(dstep("flops", draft_ctx).sum() + verify("flops", ctx_a).sum())
    dram = float(dstep("dram_bytes", draft_ctx).sum() + verify("dram_bytes", ctx_a).sum())
    ttft = t_pre.time_s + d_pre.time_s
    rounds = len(ctx_a)
    summary = {
        "gamma": gamma,
        "accept_rate": accept if accept is not None else float("nan"),
        "rounds": rounds,
        "tokens_per_verify_step": float(prod_a.mean()) if rounds else float("nan"),
        "accepted_per_verify_step": float(acc_a.mean()) if rounds else float("nan"),
        "expected_tokens_per_verify_step": (expected_tokens(accept, gamma)
                                            if accept is not None else float("nan")),
        "ttft_s": ttft,
        "target_prefill_s": t_pre.time_s,
        "draft_prefill_s": d_pre.time_s,
        "draft_time_s": float(draft_s.sum()),
        "verify_time_s": float(verify_s.sum()),
        "decode_time_s": spec_decode_s,
        "e2e_s": ttft + spec_decode_s,
        "decode_energy_j": energy,
        "decode_flops": flops,
        "decode_dram_bytes": dram,
        "decode_intensity_flop_per_dram_byte": flops / dram if dram else float("nan"),
        "plain_decode_time_s": plain_decode_s,
        "plain_e2e_s": t_pre.time_s + plain_decode_s,
        "decode_speedup": plain_decode_s / spec_decode_s if spec_decode_s else float("nan"),
        "e2e_speedup": (t_pre.time_s + plain_decode_s) / (ttft + spec_decode_s),
        "output_tokens_per_s": workload.batch * gen / (ttft + spec_decode_s),
    }
    if sweep is not None:
        summary["best_gamma"] = gamma
        summary.update({f"expected_speedup_gamma_{g}": s for g, s in sweep.items()})
    steps = step_columns(gamma, p, ctx_a, prod_a, (t_pre, d_pre), dstep, verify, system.name,
                         draft_system.name)
    return SpecResult(ctx_a, acc_a, prod_a, draft_s, verify_s, summary, steps)


def step_columns(gamma: int, prompt: int, contexts: np.ndarray, produced: np.ndarray,
                 prefills: tuple, draft: StepCurve, verify: StepCurve, system: str,
                 draft_system: str) -> dict:
    """One row per step, as columns: the two prefills, then each round's ``gamma`` draft
    steps and its verify step. ``tokens_produced``: output tokens per sequence the step
    yields (the verify step's accepted + 1; draft steps and the draft's prefill yield none).
    """
    phase = ["prefill", "prefill"] + (["draft"] * gamma + ["verify"]) * len(contexts)
    ctx = np.concatenate([[0, 0], (contexts[:, None] + np.arange(gamma + 1)[None, :]
                                   * (np.arange(gamma + 1) < gamma)[None, :]).ravel()])
    is_verify = np.array(phase[2:]) == "verify"
    tokens = np.zeros(len(phase), dtype=np.int64)
    tokens[0] = 1
    tokens[2:][is_verify] = produced
    new = np.ones(len(phase), dtype=np.int64)
    new[:2] = prompt
    new[2:][is_verify] = gamma + 1
    cols = {}
    for field in ("time_s", "energy_j", "flops", "dram_bytes"):
        body = np.where(is_verify, verify(field, ctx[2:]), draft(field, ctx[2:]))
        first = [getattr(sched, field) if field != "flops" else sched.graph.total("flops")
                 for sched in prefills]
        cols[field] = np.concatenate([first, body])
    units = [main_unit(prefills[0]), main_unit(prefills[1])] + [
        verify.unit if v else draft.unit for v in is_verify]
    model = ["target", "draft"] + ["target" if v else "draft" for v in is_verify]
    with np.errstate(divide="ignore", invalid="ignore"):
        intensity = np.where(cols["dram_bytes"] > 0, cols["flops"] / cols["dram_bytes"],
                             np.nan)
    return {"phase": phase, "model": model,
            "system": [draft_system if m == "draft" else system for m in model],
            "context": ctx.tolist(), "new_tokens": new.tolist(),
            "tokens_produced": tokens.tolist(),
            **{k: v.tolist() for k, v in cols.items()},
            "intensity_flop_per_dram_byte": intensity.tolist(), "unit": units}
