"""Whole requests over a multi-system (docs/edge.md): the prompt's chunk size chosen jointly
with the partition, decode as a per-token pipeline, and link jitter from a seeded generator.

Decode at batch 1 has one token in flight: each generated token runs every stage in route
order, with its hidden state crossing every hop, and (when the LM head lives on another device
than the embedding) the sampled token id going back to the embedding's device. So one
step's time is the plain sum of the stages' DECODE times and the hops' transfer times; links'
latency, paid once per hop per token, dominates on slow networks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mappers.edge import Stage, hidden_bytes, link_name
from mappers.ir import Phase, Precision
from mappers.models import ModelConfig
from sim.edge import (MultiSystem, PrefillResult, check_fits, checked_route, plan_split,
                      simulate_prefill, stage_time_s)
from sim.errors import ConfigError

TOKEN_ID_BYTES = 4  # a sampled token id (int32) sent back to the embedding's device


def generator(seed: int | None) -> np.random.Generator | None:
    """A seeded generator for link jitter, or None (every transfer pays the mean latency)."""
    return None if seed is None else np.random.default_rng(seed)


def chunk_candidates(prompt_tokens: int) -> tuple[int, ...]:
    """Chunk sizes the planner tries: powers of two from 32 below the prompt, and the whole
    prompt (one chunk, no chunking)."""
    out, c = [], 32
    while c < prompt_tokens:
        out.append(c)
        c *= 2
    return tuple(out) + (prompt_tokens,)


@dataclass(frozen=True, slots=True)
class ChunkChoice:
    """The chosen chunk size, the (possibly re-planned) system, its prefill, and the simulated
    TTFT (s) of every candidate chunk size tried."""

    chunk_tokens: int
    system: MultiSystem
    prefill: PrefillResult
    tried: dict[int, float]


def choose_chunk(ms: MultiSystem, model: ModelConfig, *, prompt_tokens: int,
                 precision: Precision, detail: str = "roofline", plan: bool = False,
                 candidates: tuple[int, ...] | None = None, seed: int | None = None
                 ) -> ChunkChoice:
    """For each candidate chunk size (default `chunk_candidates`, which include one chunk =
    the whole prompt; given ``candidates`` are tried as they are), re-plan the partition if
    ``plan``, simulate the prefill, and keep the least TTFT (ties: the larger chunk, fewer
    transfers). Each candidate draws its jitter from a fresh generator of ``seed``."""
    sizes = sorted(set(candidates or chunk_candidates(prompt_tokens)))
    best: ChunkChoice | None = None
    tried: dict[int, float] = {}
    for chunk in sizes:
        if not 1 <= chunk <= prompt_tokens:
            continue
        split = plan_split(ms, model, prompt_tokens=prompt_tokens, chunk_tokens=chunk,
                           precision=precision, detail=detail) if plan else ms
        result = simulate_prefill(split, model, prompt_tokens=prompt_tokens,
                                  chunk_tokens=chunk, precision=precision, detail=detail,
                                  rng=generator(seed))
        tried[chunk] = result.ttft_s
        if best is None or result.ttft_s <= best.prefill.ttft_s:
            best = ChunkChoice(chunk, split, result, tried)
    assert best is not None
    return ChunkChoice(best.chunk_tokens, best.system, best.prefill, tried)


@dataclass(frozen=True, slots=True)
class DecodeResult:
    """Decode after the prefill: each step's seconds (one generated token), split into device
    compute and link transfer."""

    step_s: tuple[float, ...]
    compute_s: float
    transfer_s: float

    @property
    def tbt_s(self) -> float:
        """Mean time between tokens (s); 0 with no decode step."""
        return sum(self.step_s) / len(self.step_s) if self.step_s else 0.0


def decode_hops(stages: tuple[Stage, ...]) -> list[tuple[str, str, int]]:
    """(from, to, tokens' worth) of each hop one decode step makes: the hidden state of one
    token between stages on different devices, then the token id back to the embedding's
    device (``0`` tokens' worth: the id, not a hidden state)."""
    hops = [(a.device, b.device, 1) for a, b in zip(stages, stages[1:]) if a.device != b.device]
    if stages[-1].device != stages[0].device:
        hops.append((stages[-1].device, stages[0].device, 0))
    return hops


def simulate_decode(ms: MultiSystem, model: ModelConfig, *, prompt_tokens: int, gen: int,
                    precision: Precision, detail: str = "roofline", rng=None) -> DecodeResult:
    """``gen - 1`` decode steps after a ``prompt_tokens`` prefill (the prefill gave the first
    token): step ``i`` runs every stage's DECODE at context ``prompt_tokens + i`` and every hop
    (module docstring). Checks the split, links and memory (KV of the whole sequence) first."""
    if gen < 1:
        raise ConfigError(f"--gen: must be >= 1, got {gen}")
    stages = checked_route(ms, model)
    check_fits(ms, model, prompt_tokens + gen - 1, precision)
    hops = decode_hops(stages)
    for a, b, _ in hops:  # the hidden states' hops are checked; the ids' way back is not
        if link_name(a, b) not in ms.links:
            raise ConfigError(f"links: decode sends token ids from {a} back to {b} but no "
                              f"link joins them (add one under links:)")
    steps, compute, moved = [], 0.0, 0.0
    for i in range(gen - 1):
        ctx = prompt_tokens + i
        c = sum(stage_time_s(ms.systems[s.device], model, s, 1, ctx, precision, detail,
                             Phase.DECODE) for s in stages)
        t = sum(ms.links[link_name(a, b)].transfer_s(
            hidden_bytes(n, model.hidden_size, precision.activation) if n else TOKEN_ID_BYTES,
            rng) for a, b, n in hops)
        steps.append(c + t)
        compute += c
        moved += t
    return DecodeResult(tuple(steps), compute, moved)

