"""Batching policies, one file each, registered by name (as Vidur's replica schedulers).

A policy is a function ``(instance, now) -> list[(Sequence, new_tokens)]``: it admits
sequences from ``instance.waiting`` (allocating their KV cache with ``instance.admit``),
may preempt running ones (``instance.preempt``), and returns the next iteration's ragged
batch (empty when there is nothing to run). It may also move waiting sequences to another
instance of ``instance.peers`` (``instance.move``). Optional attributes of the function:
``needs_slo`` (SLO metrics it schedules by; the run must give them), ``needs_pool`` (the
batching another group of the cluster must use), ``takes_arrivals = False`` (the router never
sends it new requests: it serves what others move to it).

A policy's module may also define ``attach(cluster, model, instances, systems, *,
precision)``, which `sim.serving.cluster.build_instances` calls once the instances exist: a
policy that changes more than the batch (Adrenaline's attention offload times iterations and
hands sequences over) installs its controller there (``instance.offload``).
"""

from __future__ import annotations

import importlib
from typing import Callable

#: Policy name -> ``"module:function"``, imported on first use.
POLICIES = {"vllm": "sim.serving.policies.vllm:vllm_batch",
            "sarathi": "sim.serving.policies.sarathi:sarathi_batch",
            "fcfs": "sim.serving.policies.fcfs:fcfs_batch",
            "adrenaline": "sim.serving.policies.adrenaline:adrenaline_batch",
            "ascendra": "sim.serving.policies.ascendra:ascendra_batch",
            "ascendra-hp": "sim.serving.policies.ascendra:ascendra_hp_batch"}


def policy(name: str) -> Callable:
    """The batching policy registered as ``name``; ValueError naming the allowed ones."""
    if name not in POLICIES:
        raise ValueError(f"batching: unknown policy {name!r} (allowed: "
                         f"{', '.join(sorted(POLICIES))})")
    module, _, fn = POLICIES[name].partition(":")
    return getattr(importlib.import_module(module), fn)


def attach_hook(name: str) -> Callable | None:
    """The ``attach`` function of policy ``name``'s module, or None when it has none."""
    module = POLICIES[name].partition(":")[0]
    return getattr(importlib.import_module(module), "attach", None)
