"""Masked-diffusion LMs (LLaDA-style): the iterations of one generation and their cost.

A response of ``gen`` (``L``) masked tokens after ``prompt`` (``P``) tokens is generated in
``L / block`` blocks, left to right; inside a block, iterations unmask tokens until none is
left. Every iteration is a bidirectional forward pass (the model's ``causal`` is False, so
`mappers.lower` charges every query against every key of the pass and the LM head over every
new token). Modes (docs/dllm.md):

- ``vanilla`` (LLaDA, Nie et al. 2025): every iteration is a full pass over ``P + L``
  tokens with no cache; ``steps_per_block`` iterations a block (LLaDA's default, and
  ODB-dLLM's setting: ``L`` steps for ``L`` tokens, one token an iteration).
- ``fast-dllm`` (Wu et al. 2025, Fast-dLLM): a block starts with a *refresh* pass over
  ``P + L`` that rebuilds the KV cache; the block's other iterations pass only the block's
  ``b`` tokens over the cached ``P + L - b`` (``dual`` cache: prefix and suffix) or the
  block and the suffix over the cached prefix (``prefix`` cache). Each iteration, the
  refresh included, unmasks ``tokens_per_iter`` tokens (confidence-threshold parallel
  decoding) or the next count of a per-iteration file.
- ``odb`` (ODB-dLLM, arXiv 2511.21759): fast-dllm with (1) adaptive length prediction: from
  the first refresh on, the response length is the predicted ``pred_len`` (rounded up to
  blocks), which shrinks the cache the diffusion passes read, every later refresh and the
  number of blocks; (2) jump-share speculative decoding: each diffusion pass carries the
  block and ``candidates - 1`` speculative copies of it (``candidates x b`` new tokens) and
  accepts ``jump`` times as many tokens.

The workload figures (tokens per iteration, predicted length, jump factor) come from the
model's confidence on real prompts, not from the hardware: they are inputs. Their defaults
and sources (docs/dllm.md, "Inputs and their defaults"):

- ``tokens_per_iter`` 2.77: Fast-dLLM on LLaDA-8B-Instruct, GSM8K-CoT, measured tokens per
  forward pass (Qian et al., "AUP: when Accuracy Meets Parallelism in Diffusion Language
  Models", Hao AI Lab, 2025, table dLLM_Results.csv; 1.97 MATH, 2.13 MBPP, 2.45 long
  GSM8K, 4.65 HumanEval);
- ``candidates`` 4: ODB-dLLM's jump-share decoder (public PKU-SEC-Lab/ODB-dLLM,
  llada_instruct/generate_alp_jump_share.py) passes the block and three copies with the
  top-1, top-2 and both top confidences filled in, 4 x 32 = 128 tokens a pass;
- ``pred_len`` and ``jump``: no published mean; CHOSEN where used (L, 1 by default: no
  shrink, no extra acceptance), with the sensitivity in `pdsim reproduce odb-dllm`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from mappers.ir import Phase, Precision
from mappers.models import ModelConfig
from sim.engine import main_unit
from sim.errors import ConfigError
from sim.hardware import System
from sim.step import compile_step

MODES = ("vanilla", "fast-dllm", "odb")


@dataclass(frozen=True, slots=True, kw_only=True)
class DllmWorkload:
    """One diffusion generation (see the module docstring; token counts per sequence)."""

    mode: str
    batch: int = 1
    prompt_tokens: int = 128
    gen_tokens: int = 1024         # L, ODB-dLLM's setting (REFERENCE.md)
    block: int = 32                # b, ODB-dLLM's setting
    steps_per_block: int | None = None  # vanilla; None: b (one token an iteration)
    cache: str = "dual"            # fast-dllm/odb: ODB-dLLM's setting
    tokens_per_iter: float = 2.77  # fast-dllm/odb: unmasked per iteration (module docstring)
    counts: tuple[int, ...] = ()   # per-iteration unmasked counts (instead of the rate)
    pred_len: int | None = None    # odb: predicted response length (None: L, no shrink)
    jump: float = 1.0              # odb: jump-share multiplier on tokens per iteration
    candidates: int = 4            # odb: block copies per diffusion pass (ODB-dLLM's code)
    precision: Precision = Precision()

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"--dllm: unknown mode {self.mode!r} (allowed: "
                              f"{', '.join(MODES)})")
        for name in ("batch", "prompt_tokens", "gen_tokens", "block"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.gen_tokens % self.block:
            raise ConfigError(f"--block: must divide --gen ({self.gen_tokens}), got "
                              f"{self.block}")
        spb = self.steps_per_block
        if spb is not None and not 1 <= spb <= self.block:
            raise ConfigError(f"--steps-per-block: must be in 1..{self.block} (--block), "
                              f"got {spb}")
        if self.cache not in ("dual", "prefix"):
            raise ConfigError(f"--dllm-cache: unknown {self.cache!r} (allowed: dual, prefix)")
        if not (self.tokens_per_iter >= 1.0 and math.isfinite(self.tokens_per_iter)):
            raise ConfigError(f"--tokens-per-iter: must be >= 1, got {self.tokens_per_iter}")
        if not (self.jump >= 1.0 and math.isfinite(self.jump)):
            raise ConfigError(f"--jump: must be >= 1, got {self.jump}")
        if self.candidates < 1:
            raise ConfigError(f"--jump-width: must be >= 1, got {self.candidates}")
        if any(c < 1 for c in self.counts):
            raise ConfigError("--tokens-file: counts must be >= 1")
        if self.pred_len is not None and not 1 <= self.pred_len <= self.gen_tokens:
            raise ConfigError(f"--pred-len: must be in 1..{self.gen_tokens} (--gen), got "
                              f"{self.pred_len}")


@dataclass(frozen=True, slots=True)
class Iteration:
    """One forward pass: ``kind`` is ``refresh`` (a full pass that rebuilds the cache; every
    vanilla iteration is one) or ``diffusion`` (a pass over the cached sequence); ``new`` and
    ``context`` tokens per sequence; ``tokens`` unmasked per sequence."""

    kind: str
    new: int
    context: int
    tokens: int


def plan(w: DllmWorkload) -> list[Iteration]:
    """The iterations of ``w``, in order (the module docstring gives the rules)."""
    p, b, L = w.prompt_tokens, w.block, w.gen_tokens
    out: list[Iteration] = []
    if w.mode == "vanilla":
        spb = w.steps_per_block or b
        per = [b // spb + (i < b % spb) for i in range(spb)]  # spread b over spb steps
        for _ in range(L // b):
            out += [Iteration("refresh", p + L, 0, t) for t in per]
        return out
    odb = w.mode == "odb"
    rate = w.tokens_per_iter * (w.jump if odb else 1.0)
    width = w.candidates if odb else 1  # block copies a diffusion pass carries
    length = L
    k = 0
    counts = itertools.cycle(w.counts) if w.counts else None
    while k * b < length:
        left = b
        first = True
        made, j = 0, 0  # in this block
        while left > 0:
            n = next(counts) if counts is not None else _tokens(rate, made, j)
            j += 1
            t = min(n, left)
            total = p + length
            if first:
                out.append(Iteration("refresh", total, 0, t))
                if odb and w.pred_len is not None:
                    # ODB-dLLM predicts the length at the refresh (the first confident
                    # end-of-text token, rounded up to blocks) and cuts the sequence there
                    length = max(b, -(-w.pred_len // b) * b)
            elif w.cache == "dual":
                out.append(Iteration("diffusion", b * width, total - b, t))
            else:  # prefix cache: the block and the suffix over the cached prefix
                out.append(Iteration("diffusion", total - p - k * b + b * (width - 1),
                                     p + k * b, t))
            first = False
            left -= t
            made += t
        k += 1
    return out


def _tokens(rate: float, made: int, i: int) -> int:
    """Unmasked tokens of a block's iteration ``i`` at mean ``rate``: the block's cumulative
    count rounds ``rate * (i + 1)`` down, so a fractional rate is met on average,
    deterministically (a block of ``b`` takes ``ceil(b / rate)`` iterations)."""
    return max(1, math.floor(rate * (i + 1) + 1e-9) - made)


def _check_fits(model: ModelConfig, system: System, w: DllmWorkload) -> None:
    """Weights, and with a cache (fast-dllm, odb) the KV of all ``P + L`` tokens, must fit."""
    from sim.engine import Workload, _check_capacity, footprint
    held = Workload(batch=w.batch, prompt_tokens=w.prompt_tokens,
                    gen_tokens=w.gen_tokens + 1, precision=w.precision)
    weights, kv = footprint(model, system, held)
    _check_capacity(system, weights, 0 if w.mode == "vanilla" else kv, 0)


def simulate_dllm(model: ModelConfig, system: System, w: DllmWorkload, *,
                  detail: str = "tile", check_capacity: bool = True) -> dict:
    """Cost every iteration of ``w`` on ``system``; returns ``{"summary": ..., "steps":
    per-iteration columns}`` (docs/dllm.md)."""
    if model.causal:
        raise ConfigError(f"--dllm: {model.name} is a causal (autoregressive) model; "
                          f"diffusion decoding needs a bidirectional one (e.g. llada-8b)")
    if check_capacity:
        _check_fits(model, system, w)
    its = plan(w)
    memo: dict[tuple, tuple] = {}
    rows = []
    for it in its:
        key = (it.kind, it.new, it.context)
        if key not in memo:
            phase = Phase.PREFILL if it.kind == "refresh" else Phase.DECODE
            s = compile_step(model, system, phase=phase, batch=w.batch, new_tokens=it.new,
                             context=it.context, precision=w.precision, detail=detail)
            memo[key] = (s.time_s, s.energy_j, s.graph.total("flops"), s.dram_bytes,
                         main_unit(s))
        rows.append(memo[key])
    time = np.array([r[0] for r in rows])
    energy = np.array([r[1] for r in rows])
    flops = np.array([r[2] for r in rows], dtype=np.int64)
    dram = np.array([r[3] for r in rows])
    kinds = np.array([it.kind for it in its])
    summary: dict = {"mode": w.mode, "iterations": len(its),
                     "tokens": int(sum(it.tokens for it in its)),
                     "e2e_s": float(time.sum()), "energy_j": float(energy.sum()),
                     "flops": int(flops.sum()), "dram_bytes": float(dram.sum())}
    summary["tokens_per_iteration"] = summary["tokens"] / len(its)
    summary["output_tokens_per_s"] = w.batch * summary["tokens"] / summary["e2e_s"]
    for kind in ("refresh", "diffusion"):
        sel = kinds == kind
        summary[f"{kind}_iterations"] = int(sel.sum())
        summary[f"{kind}_time_s"] = float(time[sel].sum())
        f, d = float(flops[sel].sum()), float(dram[sel].sum())
        summary[f"{kind}_intensity_flop_per_dram_byte"] = f / d if d else math.nan
        summary[f"{kind}_flops"] = int(flops[sel].sum())
        summary[f"{kind}_mean_latency_s"] = (float(time[sel].mean()) if sel.any()
                                             else math.nan)
    steps = {"phase": kinds.tolist(), "new_tokens": [it.new for it in its],
             "context": [it.context for it in its],
             "tokens_produced": [it.tokens for it in its], "time_s": time.tolist(),
             "energy_j": energy.tolist(), "flops": flops.tolist(),
             "dram_bytes": dram.tolist(),
             "intensity_flop_per_dram_byte": (flops / np.where(dram > 0, dram, np.nan)).tolist(),
             "unit": [r[4] for r in rows]}
    return {"summary": summary, "steps": steps}
