"""The simulator's side of mapping policies (`mappers.mapping`): applies a named policy, and
gives the ``auto`` search its costs (each candidate step compiled and scheduled as a run
would), which the compiler cannot compute without importing unit models."""

from __future__ import annotations

from mappers.ir import Phase
from mappers.mapping import Choice, apply_mapping, check_mapping, search
from mappers.models import ModelConfig

from sim.hardware import System
from sim.step import compile_step
from sim.units.registry import unit_type


def resolve(system: System, model: ModelConfig, workload, *, name: str | None = None,
            detail: str = "tile") -> tuple[System, tuple[Choice, ...]]:
    """``system`` under the policy ``name`` (default: the system's ``mapping``; none: as
    written), with ``mapping`` cleared, and the ``auto`` search's choices (empty for a named
    policy). ``workload``: a `sim.engine.Workload` (the shapes ``auto`` costs)."""
    name = name if name is not None else system.mapping
    if name is None:
        return system, ()
    check_mapping(name)
    if name != "auto":
        return apply_mapping(system, name), ()
    capable = {u: unit_type(u).op_kinds for u in system.chip.units}
    return search(system, capable, phase_cost(model, workload, detail))


def phase_cost(model: ModelConfig, workload, detail: str):
    """``auto``'s objective ``(phase, system) -> seconds``: the prefill step's scheduled time;
    the decode steps' summed time, by the trapezoid over the first and last decode step (the
    engine interpolates sampled decode steps the same way: step time is close to linear in
    the context)."""
    p, batch = workload.precision, workload.batch
    n_decode = workload.gen_tokens - 1

    def step(system: System, phase: Phase, new_tokens: int, context: int) -> float:
        return compile_step(model, system, phase=phase, batch=batch, new_tokens=new_tokens,
                            context=context, precision=p, detail=detail).time_s

    def cost(phase: str, system: System) -> float:
        if phase == "prefill":
            return step(system, Phase.PREFILL, workload.prompt_tokens, 0)
        if n_decode == 0:
            return 0.0
        first = step(system, Phase.DECODE, 1, workload.prompt_tokens)
        last = step(system, Phase.DECODE, 1, workload.prompt_tokens + n_decode - 1)
        return n_decode * (first + last) / 2
    return cost


def explain(system: System, choices: tuple[Choice, ...]) -> str:
    """What ``--explain`` prints: each phase's op lists per unit and, under ``auto``, for
    every op kind the unit it landed on and the phase's time on each alternative."""
    lines = [f"mapping on {system.name}:"]
    for key, desc in system.chip.units.items():
        lines.append(f"  {key}: prefill [{', '.join(desc.prefill_ops)}], "
                     f"decode [{', '.join(desc.decode_ops)}]")
    lines.append("  (other op kinds on the host die: tensor, vector, dma, link)")
    if choices:
        lines.append("auto search (objective: prefill step + decode steps, summed):")
        for c in choices:
            alts = ", ".join(f"{u} {t * 1e3:.3f} ms" for u, t in c.alternatives)
            lines.append(f"  {c.phase:<7} {c.kind:<10} -> {c.unit:<5} {c.cost_s * 1e3:.3f} ms"
                         f"  (instead: {alts})")
    return "\n".join(lines)
