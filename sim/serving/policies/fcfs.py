"""One request at a time, first come first served, run to completion (no batching): the
M/D/1 reference of the validation tests and the "unbatched" SLO baseline."""

from __future__ import annotations


def fcfs_batch(inst, now: float) -> list:
    if not inst.running and inst.waiting and inst.can_admit(inst.waiting[0]):
        inst.admit(inst.waiting[0], now)
    return [(seq, seq.needed) for seq in inst.running]
