"""vLLM-style continuous batching (Kwon et al., SOSP 2023, vLLM v0 scheduler): waiting
requests are admitted first come first served while their whole prompt's KV blocks fit with
vLLM's watermark left free (`sim.serving.instance.WATERMARK`) and the iteration's token and
sequence budgets allow, and such an iteration runs their prefills only; otherwise every
running sequence decodes one token. When a decode step needs a block that is not free, the
latest-arrived running sequence is preempted by recompute and goes back to the front of the
queue (vLLM's ``_schedule_running`` and ``_preempt_by_recompute``), to be admitted again only
once its blocks fit with the watermark."""

from __future__ import annotations


def vllm_batch(inst, now: float) -> list:
    batch, tokens = [], 0
    while inst.waiting and len(inst.running) < inst.max_batch:
        seq = inst.waiting[0]
        if tokens + seq.needed > inst.max_tokens and batch:
            break
        if not inst.can_admit(seq):
            break
        inst.admit(seq, now)
        batch.append((seq, seq.needed))
        tokens += seq.needed
    # Sequences handed over with their KV cache (disaggregation) join the decodes instead.
    prefills = [(s, n) for s, n in batch if not (s.computed and n == 1)]
    if prefills:
        return prefills
    # Decode: each running sequence grows by one token; free blocks for them.
    inst.make_room([(s, 1) for s in inst.running], now)
    return [(seq, seq.needed) for seq in inst.running]
