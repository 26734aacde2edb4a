"""Jupiter (Ye et al., INFOCOM 2025) and its baselines on one multi-system (docs/edge.md,
"Jupiter"): each method serves one request and reports TTFT, end-to-end latency and the
end-to-end latency split into compute, transfer and waiting.

* ``jupiter``: the prefill chunked and pipelined with the partition and chunk size chosen by
  the planner (`sim.edge_run.choose_chunk`); then an outline of ``outline_tokens`` tokens
  decoded as one sequence; then ``points`` expansions of ``point_tokens`` tokens each, every
  expansion starting with its point's text (``ceil(outline / points)`` tokens) as a short
  prefill over the shared prompt + outline cache, the points split into ``micro_batches``
  groups pipelined over the devices. Outline and expansions decode speculatively
  (``gamma`` draft heads, per-token acceptance ``accept``): the outline by
  `sim.edge_decode.spec_rounds`, each expansion drawing its own accepted counts within its
  group and leaving the group when done (`sim.edge_decode.sample_batch_rounds`).
* ``naive-pipeline``: the layers split evenly over the devices in file order, the prompt as
  one chunk, then plain decode one token at a time through every device.
* ``tensor-parallel``: `sim.edge_tp`.
* ``one-device``: the whole model on the file's first device (or reported as not fitting).

The baselines generate ``points x point_tokens`` tokens (the answer's length); Jupiter also
generates its outline, so the outline is charged to Jupiter.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from mappers.edge import COMPUTE, Holding
from mappers.edge_decode import DecodeGroup
from mappers.ir import Precision
from mappers.models import ModelConfig
from sim.edge import MultiSystem, PrefillResult, device_footprint, simulate_prefill
from sim.edge_decode import plain_rounds, sample_batch_rounds, simulate_groups, spec_rounds
from sim.edge_run import choose_chunk
from sim.edge_tp import simulate_tp, tp_footprint
from sim.errors import ConfigError
from sim.speculative import check_accept, sample_accepted

METHODS = ("one-device", "naive-pipeline", "tensor-parallel", "jupiter")


@dataclass(frozen=True, slots=True, kw_only=True)
class Outline:
    """Jupiter's decode (module docstring): ``points`` P, tokens of the outline and of each
    point's expansion, ``micro_batches`` (None: min(P, devices)), draft length ``gamma`` (0:
    no speculation), acceptance rate and the seed of the sampled acceptances."""

    points: int = 8
    outline_tokens: int = 64
    point_tokens: int = 64
    micro_batches: int | None = None
    gamma: int = 4
    accept: float = 0.6
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("points", "outline_tokens", "point_tokens"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')}: must be >= 1, got "
                                  f"{getattr(self, name)}")
        if self.micro_batches is not None and not 1 <= self.micro_batches <= self.points:
            raise ConfigError(f"--micro-batches: must be between 1 and the {self.points} "
                              f"points, got {self.micro_batches}")
        if self.gamma < 0:
            raise ConfigError(f"--gamma: must be >= 0 (0: no speculation), got {self.gamma}")
        check_accept(self.accept)

    @property
    def answer_tokens(self) -> int:
        """Tokens of the answer (the expansions), what the baselines generate."""
        return self.points * self.point_tokens


@dataclass(frozen=True, slots=True)
class MethodResult:
    """One method's request: ``fits`` False (with ``need_gb``/``have_gb`` of the device that
    fails) when its memory check refuses it, else TTFT and end-to-end (s) and the end-to-end
    ``breakdown`` (compute, transfer, waiting: s, summing to ``e2e_s``)."""

    method: str
    fits: bool
    ttft_s: float = 0.0
    e2e_s: float = 0.0
    breakdown: dict = field(default_factory=dict)
    need_gb: float = 0.0
    have_gb: float = 0.0
    detail: dict = field(default_factory=dict)


def prefill_breakdown(result: PrefillResult) -> dict[str, float]:
    """TTFT seen by the last chunk: its own compute and transfer seconds, and waiting (the
    rest: devices and links busy with the chunks before it)."""
    last = max(t.op.chunk for t in result.timeline)
    mine = [t for t in result.timeline if t.op.chunk == last]
    c = sum(t.end_s - t.start_s for t in mine if t.op.kind == COMPUTE)
    x = sum(t.end_s - t.start_s for t in mine if t.op.kind != COMPUTE)
    return {"compute": c, "transfer": x, "waiting": max(0.0, result.ttft_s - c - x)}


def even_split(ms: MultiSystem, num_layers: int) -> MultiSystem:
    """``ms`` with its layers in equal contiguous blocks over its devices in file order (the
    first ones one layer more when they do not divide), the embedding on the first and the LM
    head on the last."""
    d = len(ms.spec.devices)
    if num_layers < d:
        raise ConfigError(f"devices: {d} devices for {num_layers} layers; each needs one")
    base, extra = divmod(num_layers, d)
    devices, first = [], 0
    for k, spec in enumerate(ms.spec.devices):
        n = base + (k < extra)
        devices.append(replace(spec, layers=(f"{first}-{first + n - 1}",), embedding=k == 0,
                               lm_head=k == d - 1))
        first += n
    return replace(ms, spec=replace(ms.spec, devices=tuple(devices)))


def first_device(ms: MultiSystem, num_layers: int) -> MultiSystem:
    """The file's first device alone, holding the whole model."""
    spec = replace(ms.spec.devices[0], layers=(f"0-{num_layers - 1}",), embedding=True,
                   lm_head=True)
    return MultiSystem(spec=replace(ms.spec, devices=(spec,), links=()),
                       systems={spec.name: ms.systems[spec.name]}, links={})


def _add(*parts: dict) -> dict[str, float]:
    return {k: sum(p[k] for p in parts) for k in ("compute", "transfer", "waiting")}


def _memory(ms: MultiSystem, model: ModelConfig, kv_tokens: int, precision: Precision):
    """(need, have) bytes of the first device whose memory is too small, else None."""
    for h in ms.holdings:
        s = ms.systems[h.device]
        need = device_footprint(model, h, kv_tokens, precision)
        have = s.chip.memory.capacity_bytes * s.tensor_parallel * s.pipeline_parallel
        if need > have:
            return need, have
    return None


def sequential(ms: MultiSystem, model: ModelConfig, method: str, *, prompt_tokens: int,
               gen: int, precision: Precision, detail: str = "roofline") -> MethodResult:
    """``ms`` as split, the prompt as one chunk, then ``gen - 1`` plain decode steps through
    every device (one-device and naive-pipeline)."""
    short = _memory(ms, model, prompt_tokens + gen - 1, precision)
    if short is not None:
        return MethodResult(method, False, need_gb=short[0] / 1e9, have_gb=short[1] / 1e9)
    pre = simulate_prefill(ms, model, prompt_tokens=prompt_tokens, chunk_tokens=prompt_tokens,
                           precision=precision, detail=detail)
    dec = simulate_groups(ms, model, [DecodeGroup(sequences=1, context=prompt_tokens,
                                                  rounds=plain_rounds(gen - 1))],
                          precision=precision, detail=detail)
    return MethodResult(method, True, pre.ttft_s, pre.ttft_s + dec.makespan_s,
                        _add(prefill_breakdown(pre), dec.breakdown()))


def tensor_parallel(ms: MultiSystem, model: ModelConfig, *, prompt_tokens: int, gen: int,
                    precision: Precision, detail: str = "roofline") -> MethodResult:
    """`sim.edge_tp.simulate_tp` as a `MethodResult` (not fitting: the shard's need)."""
    need, have = tp_footprint(ms, model, prompt_tokens + gen - 1, precision)
    if need > have:
        return MethodResult("tensor-parallel", False, need_gb=need / 1e9, have_gb=have / 1e9)
    r = simulate_tp(ms, model, prompt_tokens=prompt_tokens, gen=gen, precision=precision,
                    detail=detail)
    return MethodResult("tensor-parallel", True, r.ttft_s, r.e2e_s, {
        "compute": r.prefill_compute_s + r.decode_compute_s,
        "transfer": r.prefill_transfer_s + r.decode_transfer_s, "waiting": 0.0})


def jupiter(ms: MultiSystem, model: ModelConfig, outline: Outline, *, prompt_tokens: int,
            precision: Precision, detail: str = "roofline") -> MethodResult:
    """Jupiter's request (module docstring) over the devices of ``ms`` in file order."""
    o = outline
    d = len(ms.spec.devices)
    point_text = -(-o.outline_tokens // o.points)
    kv = (prompt_tokens + o.outline_tokens
          + o.points * (prompt_tokens + o.outline_tokens + point_text + o.point_tokens))
    try:
        choice = choose_chunk(ms, model, prompt_tokens=prompt_tokens, precision=precision,
                              detail=detail, plan=True)
    except ConfigError as exc:
        if "fits" not in str(exc):
            raise
        return MethodResult("jupiter", False, detail={"why": str(exc)})
    split = choice.system
    short = _memory(split, model, kv, precision)
    if short is not None:
        return MethodResult("jupiter", False, need_gb=short[0] / 1e9, have_gb=short[1] / 1e9)

    def rounds(tokens: int, seed: int) -> tuple[tuple[int, int], ...]:
        if o.gamma == 0:
            return plain_rounds(tokens)
        return spec_rounds(tokens, o.gamma, sample_accepted(o.accept, o.gamma, tokens, seed))
    heads = o.gamma
    out_run = simulate_groups(split, model, [DecodeGroup(
        sequences=1, context=prompt_tokens, rounds=rounds(o.outline_tokens - 1, o.seed))],
        precision=precision, detail=detail, draft_heads=heads) if o.outline_tokens > 1 else None
    m = o.micro_batches or min(o.points, d)
    sizes = [o.points // m + (k < o.points % m) for k in range(m)]
    # a group's rounds: its points' text as one short prefill round, then the expansion
    # per-point acceptance: point p draws its counts from seed + 1 + p whatever its group, and
    # leaves its group when done
    first = [sum(sizes[:k]) for k in range(m)]
    groups = [DecodeGroup(sequences=n, context=prompt_tokens + o.outline_tokens,
                          rounds=((point_text, point_text),) + (
                              sample_batch_rounds(o.point_tokens, o.gamma, o.accept, [
                                  o.seed + 1 + p for p in range(first[k], first[k] + n)])
                              if o.gamma else plain_rounds(o.point_tokens)))
              for k, n in enumerate(sizes)]
    exp_run = simulate_groups(split, model, groups, precision=precision, detail=detail,
                              draft_heads=heads)
    parts = [prefill_breakdown(choice.prefill), exp_run.breakdown()]
    outline_s = 0.0
    if out_run is not None:
        parts.append(out_run.breakdown())
        outline_s = out_run.makespan_s
    ttft = choice.prefill.ttft_s
    return MethodResult("jupiter", True, ttft, ttft + outline_s + exp_run.makespan_s,
                        _add(*parts), detail={
                            "chunk_tokens": choice.chunk_tokens,
                            "layers": [_count(h) for h in split.holdings],
                            "outline_s": outline_s, "expansions_s": exp_run.makespan_s,
                            "micro_batches": m})


def _count(h: Holding) -> int:
    return sum(b - a + 1 for a, b in h.layers)


def run_methods(ms: MultiSystem, model: ModelConfig, outline: Outline, *, prompt_tokens: int,
                precision: Precision, detail: str = "roofline") -> dict[str, MethodResult]:
    """Every method of `METHODS` on ``ms`` for one request (module docstring)."""
    gen = outline.answer_tokens
    kw = {"prompt_tokens": prompt_tokens, "precision": precision, "detail": detail}
    return {
        "one-device": sequential(first_device(ms, model.num_layers), model, "one-device",
                                 gen=gen, **kw),
        "naive-pipeline": sequential(even_split(ms, model.num_layers), model, "naive-pipeline",
                                     gen=gen, **kw),
        "tensor-parallel": tensor_parallel(ms, model, gen=gen, **kw),
        "jupiter": jupiter(ms, model, outline, **kw),
    }
