"""Sarathi-Serve chunked prefill (Agrawal et al., OSDI 2024): every iteration carries each
running decode (one token) and fills the rest of a token budget (``max_tokens``) with prefill
chunks, of sequences already admitted first, then of newly admitted ones; decodes are never
stalled by a long prompt. Admission and preemption as `sim.serving.policies.vllm`'s (vLLM's
chunked-prefill scheduler shares them): blocks must fit with the watermark left free, and the
latest-arrived running sequence is preempted by recompute when decodes need blocks."""

from __future__ import annotations


def sarathi_batch(inst, now: float) -> list:
    decodes = [s for s in inst.running if s.computed and s.needed == 1 and s.generated]
    gone = {id(s) for s in inst.make_room([(s, 1) for s in decodes], now)}
    decodes = [s for s in decodes if id(s) not in gone]
    batch = [(s, 1) for s in decodes]
    budget = inst.max_tokens - len(batch)
    chosen = {id(s) for s in decodes}
    for seq in inst.running:
        if budget <= 0:
            break
        if id(seq) not in chosen:
            n = min(seq.needed, budget)
            if not inst.fits_growth([*batch, (seq, n)]):
                break
            batch.append((seq, n))
            budget -= n
    inst.grow(batch)  # take the blocks chosen so far, so that admission sees what is left
    while budget > 0 and inst.waiting and len(inst.running) < inst.max_batch:
        seq = inst.waiting[0]
        if not inst.can_admit(seq, min(seq.needed, budget)):
            break
        n = min(seq.needed, budget)
        inst.admit(seq, now, n)
        batch.append((seq, n))
        budget -= n
    return batch
