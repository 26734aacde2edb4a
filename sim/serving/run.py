"""One serving run end to end: trace -> cluster -> simulation -> summary, and its HDF5 trace
(per-request records and per-instance timelines, docs/trace-format.md)."""

from __future__ import annotations

import io
import json
from typing import Callable

import numpy as np

from sim.errors import ConfigError
from sim.serving.cluster import Cluster, build_instances, kv_bytes_per_token
from sim.serving.metrics import summarise
from sim.serving.simulator import ServeResult, simulate_serving
from sim.serving.training import training_summary
from sim.serving.workload import SHAREGPT, load_trace, sharegpt, synthetic

#: Default run: the first 10 minutes of the Azure conversation trace.
DEFAULT_TRACE, DEFAULT_DURATION_S = "azure-conv", 600.0


def requests_for(trace: str, *, rate: float | None, duration_s: float | None, seed: int = 0):
    """The trace's requests (its first ``duration_s`` seconds), or with ``rate`` Poisson
    arrivals at ``rate`` per second for ``duration_s`` seconds (default: the trace's length)
    with the trace's prompt and output lengths. ``sharegpt`` is lengths only: it needs
    ``rate`` (default duration `DEFAULT_DURATION_S`)."""
    if trace == SHAREGPT:
        if rate is None:
            raise ConfigError("--rate: --trace sharegpt generates lengths only; give --rate R "
                              "requests/s")
        return sharegpt(rate=rate, duration_s=duration_s or DEFAULT_DURATION_S,
                        rng=np.random.default_rng(seed))
    if rate is None:
        return load_trace(trace, duration_s=duration_s)
    lengths = load_trace(trace)
    span = duration_s if duration_s is not None else max(lengths[-1].arrival_s, 1.0)
    return synthetic(lengths, rate=rate, duration_s=span, rng=np.random.default_rng(seed))


def serve(requests, cluster: Cluster, slo: dict, *,
          progress: Callable[[int, int], None] | None = None,
          tables: dict | None = None) -> tuple[ServeResult, dict]:
    """Simulate ``requests`` on ``cluster``; returns the result and its summary. ``tables``:
    step-time tables kept between runs (`build_instances`)."""
    from sim.costmodel import static_power_w, spad_cost_model

    model, instances, systems, tables = build_instances(cluster, requests, tables=tables,
                                                        slo=slo)
    result = simulate_serving(requests, instances, router=cluster.router,
                              kv_bytes_per_token=kv_bytes_per_token(model),
                              link=cluster.link, progress=progress)
    cost = {}
    for g_inst in instances:
        system = systems[g_inst.name]
        est = spad_cost_model(system.chip)
        static = static_power_w(system.chip)
        if est is None or static is None:
            cost = None
            break
        chips = system.tensor_parallel * system.pipeline_parallel
        cost[g_inst.name] = (est["cost_usd"], est["tdp_w"], static, chips)
    summary = summarise(result, slo, cost=cost)
    summary["step_tables_simulated"] = sum(t.simulated for t in tables)
    training = training_summary(instances, result.end_s)
    if training is not None:  # the co-located training job (sim/serving/training.py)
        summary["training"] = training
    offload = next((i.offload for i in instances if i.offload is not None), None)
    if offload is not None:  # Adrenaline: requests whose KV cache stayed on a prefill instance
        summary["offloaded_requests"] = offload.offloaded
    return result, summary


def write_serve_trace(path, result: ServeResult, summary: dict, meta: dict) -> None:
    """Write the run's HDF5 trace (format ``pdsim-serve``, docs/trace-format.md)."""
    import h5py

    from sim.files import atomic_write

    req = np.array([(s.request.id, s.request.arrival_s, s.request.prompt_tokens,
                     s.request.output_tokens, s.generated, s.first_token_s, s.finish_s,
                     s.tbt_sum_s / max(1, len(s.tbts)), s.max_tbt_s, s.queue_delay_s,
                     s.transfer_s, s.preemptions) for s in result.sequences],
                   dtype=[("id", "i8"), ("arrival_s", "f8"), ("prompt_tokens", "i8"),
                          ("output_tokens", "i8"), ("generated", "i8"), ("first_token_s", "f8"),
                          ("finish_s", "f8"), ("mean_tbt_s", "f8"), ("max_tbt_s", "f8"),
                          ("queue_delay_s", "f8"), ("transfer_s", "f8"), ("preemptions", "i8")])
    image = io.BytesIO()
    with h5py.File(image, "w", track_order=True) as f:
        f.attrs["format"] = "pdsim-serve"
        f.attrs["format_version"] = 1
        g = f.create_group("meta")
        for k, v in meta.items():
            g.attrs[k] = v
        f.attrs["summary_json"] = json.dumps(summary)
        f.create_dataset("requests", data=req, compression="gzip")
        inst = f.create_group("instances", track_order=True)
        for i in result.instances:
            tl = np.array([(it.start_s, it.end_s, it.batch, it.tokens, it.kv_blocks)
                           for it in i.timeline],
                          dtype=[("start_s", "f8"), ("end_s", "f8"), ("batch", "i8"),
                                 ("tokens", "i8"), ("kv_blocks", "i8")])
            d = inst.create_dataset(i.name, data=tl, compression="gzip")
            d.attrs["role"], d.attrs["hardware"] = i.role, i.kind
            d.attrs["kv_blocks_total"], d.attrs["block_tokens"] = i.kv_blocks, i.block_tokens
        if any(i.trainer is not None for i in result.instances):
            train = f.create_group("training", track_order=True)
            for i in result.instances:
                log = np.array(i.trainer.log, dtype=[("start_s", "f8"), ("end_s", "f8"),
                                                     ("pending", "i8")])
                train.create_dataset(i.name, data=log, compression="gzip")
    atomic_write(path, lambda tmp: tmp.write_bytes(image.getvalue()))
