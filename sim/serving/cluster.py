"""A cluster file (YAML): the model, the router, the KV link and groups of instances, each a
system (preset or YAML, tp, pp) with a role and a batching policy (docs/serving.md).

    model: llama2-7b
    router: round_robin          # sim.serving.router.ROUTERS
    detail: roofline             # chip model of the step-time tables (roofline or tile)
    link: {bandwidth_bytes_per_s: 50e9, latency_s: 5e-6}
    instances:
      - {hardware: h100, tp: 1, pp: 1, role: collocated, count: 1, batching: sarathi,
         max_batch: 256, max_tokens: 2048}
    training: {batch: 1, seq: 512, lora_rank: 16}   # optional (sim/serving/training.py)
"""

from __future__ import annotations

import math

from dataclasses import dataclass

from mappers.ir import Precision
from mappers.models import ModelConfig
from sim.dtypes import nbytes
from sim.errors import ConfigError
from sim.files import read_text
from sim.schema import load_yaml
from sim.serving.instance import ROLES, Instance
from sim.serving.metrics import slo_metric
from sim.serving.policies import POLICIES, attach_hook, policy
from sim.serving.router import ROUTERS
from sim.serving.simulator import Link
from sim.serving.steptime import StepTimeTable
from sim.serving.training import Trainer, Training, parse_training, train_plan

#: Fraction of each chip's memory the server may use (vLLM's gpu_memory_utilization).
MEMORY_UTILISATION = 0.9
BLOCK_TOKENS = 16
#: fp16 weights, activations and KV cache (`mappers.ir.Precision` defaults).
DEFAULT_PRECISION = Precision()

DEFAULT_CLUSTER = {"model": "llama2-7b", "instances": [{"hardware": "h100",
                                                         "role": "collocated"}]}
_GROUP_KEYS = {"hardware": str, "tp": int, "pp": int, "role": str, "count": int,
               "batching": str, "max_batch": int, "max_tokens": int,
               "offload_ratio": (int, float, str)}
_TOP_KEYS = {"model", "router", "detail", "link", "instances", "training"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Group:
    """``count`` identical instances."""

    hardware: str
    tp: int = 1
    pp: int = 1
    role: str = "collocated"
    count: int = 1
    batching: str = "sarathi"
    max_batch: int = 256
    max_tokens: int = 2048
    #: Share of decode attention offloaded to prefill instances (``batching: adrenaline``):
    #: a number in [0, 1] or "auto" (load-aware; sim/serving/policies/adrenaline.py).
    offload_ratio: float | str = "auto"


@dataclass(frozen=True, slots=True, kw_only=True)
class Cluster:
    model: str
    groups: tuple[Group, ...]
    router: str = "round_robin"
    detail: str = "roofline"
    link: Link = Link()
    #: Training run on every instance in the gaps serving leaves; None: serving only.
    training: Training | None = None


def read_cluster(path: str | None) -> Cluster:
    """The cluster of a YAML file (None: `DEFAULT_CLUSTER`); `ConfigError` naming the field."""
    if path is None:
        return parse_cluster(DEFAULT_CLUSTER, "default cluster")
    # The one input reader (a regular file, size-limited, UTF-8) and the one YAML parser
    # (keys given twice refused), as for every other file pdsim reads.
    data = load_yaml(read_text(path, "--cluster"), f"--cluster {path}")
    return parse_cluster(data, path)


def _parse_link(data, at: str) -> Link:
    """The KV hand-over link: ``bandwidth_bytes_per_s`` (> 0) and ``latency_s`` (>= 0), finite
    numbers (a YAML ``true`` is not a number here)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{at}: must be a mapping with bandwidth_bytes_per_s and latency_s")
    lows = {"bandwidth_bytes_per_s": (0.0, "> 0"), "latency_s": (None, ">= 0")}
    values = {}
    for key, value in data.items():
        if key not in lows:
            raise ConfigError(f"{at}: unknown field {key!r} (allowed: {', '.join(lows)})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise ConfigError(f"{at}.{key}: must be a finite number, got {value!r}")
        low, allowed = lows[key]
        if (value <= low) if low is not None else value < 0:
            raise ConfigError(f"{at}.{key}: must be {allowed}, got {value!r}")
        values[key] = float(value)
    return Link(**values)


def parse_cluster(data, where: str) -> Cluster:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: must be a mapping with model and instances")
    extra = set(data) - _TOP_KEYS
    if extra:
        raise ConfigError(f"{where}: unknown field {sorted(extra)[0]!r} (allowed: "
                          f"{', '.join(sorted(_TOP_KEYS))})")
    router = data.get("router", "round_robin")
    if router not in ROUTERS:
        raise ConfigError(f"{where}: router: unknown {router!r} (allowed: {', '.join(ROUTERS)})")
    detail = data.get("detail", "roofline")
    if detail not in ("roofline", "tile"):
        raise ConfigError(f"{where}: detail: must be roofline or tile, got {detail!r}")
    link = _parse_link(data.get("link", {}) or {}, f"{where}: link")
    groups = []
    for k, g in enumerate(data.get("instances") or []):
        at = f"{where}: instances[{k}]"
        if not isinstance(g, dict) or "hardware" not in g:
            raise ConfigError(f"{at}: must be a mapping with at least hardware")
        for key, value in g.items():
            typ = _GROUP_KEYS.get(key)
            if typ is None:
                raise ConfigError(f"{at}: unknown field {key!r} (allowed: "
                                  f"{', '.join(_GROUP_KEYS)})")
            if key == "offload_ratio":
                _check_ratio(value, f"{at}.{key}")
                continue
            if not isinstance(value, typ) or (typ is int and (isinstance(value, bool)
                                                               or value < 1)):
                raise ConfigError(f"{at}.{key}: must be "
                                  f"{'an integer >= 1' if typ is int else 'a string'}, "
                                  f"got {value!r}")
        if g.get("role", "collocated") not in ROLES:
            raise ConfigError(f"{at}.role: must be one of {', '.join(ROLES)}, got {g['role']!r}")
        if g.get("batching", "sarathi") not in POLICIES:
            raise ConfigError(f"{at}.batching: must be one of {', '.join(POLICIES)}, got "
                              f"{g['batching']!r}")
        if g.get("batching") == "adrenaline" and g.get("role") != "decode":
            raise ConfigError(f"{at}.batching: adrenaline is for decode groups (it offloads "
                              f"their attention to the prefill instances)")
        if "offload_ratio" in g and g.get("batching") != "adrenaline":
            raise ConfigError(f"{at}.offload_ratio: only with batching: adrenaline")
        groups.append(Group(**g))
    if not groups:
        raise ConfigError(f"{where}: instances: at least one instance group is needed")
    batchings = {g.batching for g in groups}
    for g in groups:  # a policy that hands requests to another pool needs that pool
        peer = getattr(policy(g.batching), "needs_pool", None)
        if peer is not None and peer not in batchings:
            raise ConfigError(f"{where}: instances: batching {g.batching} needs a group with "
                              f"batching {peer}")
    roles = {g.role for g in groups}
    if not roles & {"collocated", "prefill"}:
        raise ConfigError(f"{where}: instances: needs a collocated or prefill instance")
    if ("prefill" in roles) != ("decode" in roles):
        raise ConfigError(f"{where}: instances: prefill instances need decode instances and "
                          f"vice versa")
    training = data.get("training")
    training = None if training is None else parse_training(training, where)
    return Cluster(model=str(data.get("model", "llama2-7b")), groups=tuple(groups),
                   router=router, detail=detail, link=link, training=training)


def _check_ratio(value, at: str) -> None:
    ok = value == "auto" or (isinstance(value, (int, float)) and not isinstance(value, bool)
                             and 0 <= value <= 1)
    if not ok:
        raise ConfigError(f"{at}: must be a number in [0, 1] or auto, got {value!r}")


def kv_bytes_per_token(model: ModelConfig, precision: Precision = DEFAULT_PRECISION) -> int:
    """Bytes of one token's KV cache over the whole model (every layer and KV head), its
    per-token scales and zero points included (`Precision.kv_token_scale_bytes`)."""
    per_layer = (nbytes(2 * model.num_kv_heads * model.head_dim, precision.kv)
                 + 2 * precision.kv_token_scale_bytes(1, model.num_kv_heads, model.head_dim))
    return model.num_layers * per_layer


def kv_capacity_tokens(model: ModelConfig, system, precision: Precision = DEFAULT_PRECISION,
                       reserved_bytes: int = 0) -> int:
    """Tokens of KV cache an instance holds: the chip memory left by the weights (at
    `MEMORY_UTILISATION`) and ``reserved_bytes`` (a co-located training job's state) in its
    fullest pipeline stage, over one token's KV bytes there."""
    from sim.engine import Workload, stage_footprints

    stages = stage_footprints(model, system, Workload(batch=1, prompt_tokens=1, gen_tokens=1,
                                                      precision=precision))
    cap = system.chip.memory.capacity_bytes * MEMORY_UTILISATION - reserved_bytes
    return int(min((cap - w) // kv for w, kv in stages)) if all(kv for _, kv in stages) else 0


def build_instances(cluster: Cluster, requests, *, precision: Precision = DEFAULT_PRECISION,
                    tables: dict | None = None, slo: dict | None = None):
    """``(model, instances, {instance name: system}, step-time tables)`` of ``cluster``, one
    table per distinct system, shared; `ConfigError` for an impossible cluster (a model that
    does not fit, or a request whose KV cache fits no instance it may be sent to). ``tables``:
    a dict the caller keeps to share tables between runs (the planner); ``slo``: the targets
    (`sim.serving.metrics.parse_slo`) given to deadline-aware policies."""
    from sim.api import load_model, load_system

    model = load_model(cluster.model)
    tables = {} if tables is None else tables
    out, systems = [], {}
    longest = max(r.prompt_tokens + r.output_tokens - 1 for r in requests)
    longest_prompt = max(r.prompt_tokens for r in requests)
    slo = dict(slo or {})
    for k, g in enumerate(cluster.groups):
        given = {slo_metric(k) for k in slo}
        missing = [m for m in getattr(policy(g.batching), "needs_slo", ()) if m not in given]
        if missing:
            raise ConfigError(f"--slo: batching {g.batching} (instances[{k}]) schedules by "
                              f"deadline: give a {missing[0]}_pNN target")
        key = (cluster.model, cluster.detail, g.hardware, g.tp, g.pp)
        if key not in tables:
            system = load_system(g.hardware, tp=g.tp, pp=g.pp)
            table = StepTimeTable(model, system, detail=cluster.detail, precision=precision)
            tables[key] = (system, kv_capacity_tokens(model, system, precision), table)
        system, tokens, table = tables[key]
        plan = None
        if cluster.training is not None:  # memoised beside the step tables
            tkey = ("training", cluster.training, *key)
            if tkey not in tables:
                p = train_plan(cluster.training, model, system, precision=precision,
                               detail=cluster.detail, where=f"cluster: instances[{k}]")
                tables[tkey] = (p, kv_capacity_tokens(model, system, precision, p.extra_bytes))
            plan, tokens = tables[tkey]
        if tokens < BLOCK_TOKENS:
            room, fix = ((" beside its training job", "raise tp or shrink the training job")
                         if plan else ("", "raise tp or pp"))
            raise ConfigError(f"cluster: instances[{k}]: {model.name} does not fit on "
                              f"{g.hardware} with tp {g.tp}, pp {g.pp}{room} (no room for a KV "
                              f"cache); {fix}")
        need = longest_prompt if g.role == "prefill" else longest
        if tokens < need:
            raise ConfigError(f"cluster: instances[{k}]: a request needs {need} tokens of KV "
                              f"cache, {g.hardware} (tp {g.tp}, pp {g.pp}) holds {tokens}")
        for c in range(g.count):
            systems[f"{g.role}{k}.{c}"] = system
            out.append(Instance(name=f"{g.role}{k}.{c}", role=g.role, kind=g.hardware,
                                step_time=table.step, kv_blocks=tokens // BLOCK_TOKENS,
                                policy=policy(g.batching), block_tokens=BLOCK_TOKENS,
                                max_batch=g.max_batch, max_tokens=g.max_tokens, slo=slo))
            if plan is not None:
                out[-1].trainer = Trainer(plan=plan, share=cluster.training.share)
    for name in sorted({g.batching for g in cluster.groups}):
        hook = attach_hook(name)  # a policy that is more than a batching rule (Adrenaline)
        if hook is not None:
            hook(cluster, model, out, systems, precision=precision)
    used = {id(t): t for t in (tables[(cluster.model, cluster.detail, g.hardware, g.tp, g.pp)][2]
                               for g in cluster.groups)}
    return model, out, systems, list(used.values())
