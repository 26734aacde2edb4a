"""Several systems joined by network links, one model's layers split over them (docs/edge.md).

A multi-system file (YAML) names its devices (each a hardware preset or file, `sim.presets`),
the layers each holds, which holds the embedding and the LM head, and the network links
between them (`NetLink`, presets in ``sim/presets/net/``). `simulate_prefill` costs each
device's stage of each prompt chunk with the step simulator (`sim.step`), each hidden-state
hop with the link model (latency + bytes / bandwidth to arrive, the link held for the bytes'
airtime only), and lays them out with the pipeline scheduler of `mappers.edge`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache

from mappers.edge import (COMPUTE, Holding, PipeOp, Stage, Timed, check_split, chunk_sizes,
                          direction, link_bytes, link_name, pipeline_ops, route, schedule_pipeline)
from mappers.ir import Phase, Precision
from mappers.models import ModelConfig
from sim.dtypes import nbytes
from sim.errors import ConfigError
from sim.hardware import System
from sim.presets import load_hardware
from sim.schema import parse_yaml
from sim.shipped import Shelf

NETS = Shelf(package="sim", folder="presets/net", suffixes=(".yaml", ".yml"), flag="net",
             noun="network link preset")
MULTI = Shelf(package="sim", folder="presets/multi", suffixes=(".yaml", ".yml"),
              flag="--system-file", noun="multi-system preset")


@dataclass(frozen=True, slots=True, kw_only=True)
class NetLink:
    """A network link: achieved bandwidth per direction (bytes/s), one-way latency (s) and its
    jitter (s, the standard deviation of the latency; sampled only when a run is given a
    seeded generator, else every transfer pays the mean latency)."""

    name: str
    bandwidth_bytes_per_s: float
    latency_s: float
    jitter_s: float = 0.0

    def __post_init__(self) -> None:
        if not self.bandwidth_bytes_per_s > 0:
            raise ConfigError(f"bandwidth_bytes_per_s: must be > 0, got "
                              f"{self.bandwidth_bytes_per_s!r}")
        for name in ("latency_s", "jitter_s"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}: must be >= 0, got {getattr(self, name)!r}")

    def transfer_s(self, size_bytes: int, rng=None) -> float:
        """Seconds from sending ``size_bytes`` one way to their arrival: latency + bytes /
        bandwidth (the link is held for the second term only: `schedule_links`). With ``rng``
        (a `numpy.random.Generator`) the latency is drawn from a normal of mean ``latency_s``
        and deviation ``jitter_s``, clipped at zero (a packet cannot arrive before it left)."""
        latency = self.latency_s
        if rng is not None and self.jitter_s > 0:
            latency = max(0.0, float(rng.normal(self.latency_s, self.jitter_s)))
        return latency + size_bytes / self.bandwidth_bytes_per_s


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceSpec:
    """One device of a multi-system: ``hardware`` is a preset name or a YAML path; ``layers``
    inclusive ranges written ``"first-last"`` (or one layer, ``"7"``)."""

    name: str
    hardware: str
    layers: tuple[str, ...] = ()
    embedding: bool = False
    lm_head: bool = False

    def __post_init__(self) -> None:
        if not self.name or "|" in self.name or "->" in self.name:
            raise ConfigError(f"name: must be non-empty, without '|' or '->', got "
                              f"{self.name!r}")
        self.ranges  # noqa: B018 (parses, so a malformed range is refused at load)

    @property
    def ranges(self) -> tuple[tuple[int, int], ...]:
        """``layers`` as inclusive (first, last) pairs."""
        out = []
        for text in self.layers:
            first, _, last = str(text).partition("-")
            try:
                pair = (int(first), int(last or first))
            except ValueError:
                raise ConfigError(f"layers: a range is 'first-last' or one layer number, got "
                                  f"{text!r}") from None
            out.append(pair)
        return tuple(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkSpec:
    """A link between two devices: a network link preset name or YAML path. ``medium``: links
    naming the same medium share it (one Wi-Fi channel: one transfer's bytes on the air at a
    time, both directions and every such link; docs/edge.md); None: the link's two directions
    are its own."""

    between: tuple[str, ...]
    net: str
    medium: str | None = None

    def __post_init__(self) -> None:
        if len(self.between) != 2 or self.between[0] == self.between[1]:
            raise ConfigError(f"between: must name two different devices, got "
                              f"{list(self.between)}")
        if self.medium is not None and not str(self.medium).strip():
            raise ConfigError("medium: must be a non-empty name (links naming the same medium "
                              "share it), or left out")


@dataclass(frozen=True, slots=True, kw_only=True)
class MultiSystemSpec:
    """A multi-system file as written (docs/edge.md)."""

    name: str
    devices: tuple[DeviceSpec, ...]
    links: tuple[LinkSpec, ...] = ()
    model: str | None = None
    chunk_tokens: int = 512

    def __post_init__(self) -> None:
        if not self.devices:
            raise ConfigError("devices: must list at least one device")
        names = [d.name for d in self.devices]
        for n in names:
            if names.count(n) > 1:
                raise ConfigError(f"devices: name {n!r} given twice")
        for i, link in enumerate(self.links):
            for end in link.between:
                if end not in names:
                    raise ConfigError(f"links[{i}].between: unknown device {end!r} "
                                      f"(devices: {', '.join(names)})")
        if self.chunk_tokens < 1:
            raise ConfigError(f"chunk_tokens: must be >= 1, got {self.chunk_tokens}")


@dataclass(frozen=True, slots=True)
class MultiSystem:
    """A loaded multi-system: each device's `System`, each link by `link_name`."""
    # Device names cannot hold "|" or "->" (link and direction names are built from them).

    spec: MultiSystemSpec
    systems: dict[str, System]
    links: dict[str, NetLink]
    # link name (both directions) or one direction ``a->b`` -> the medium it sends on
    media: dict[str, str] = field(default_factory=dict)

    def direction_media(self) -> dict[str, str]:
        """Each link direction (``a->b``) on a medium -> the medium's name."""
        out = {}
        for key, medium in self.media.items():
            if "->" in key:
                out[key] = medium
                continue
            a, b = key.split("|")
            out[direction(a, b)] = out[direction(b, a)] = medium
        return out

    def link_of(self, resource: str) -> NetLink:
        """The link a transfer on direction ``a->b`` sends over."""
        return self.links[link_name(*resource.split("->"))]

    def own_media(self) -> MultiSystem:
        """This system with no shared medium: each link direction a timeline of its own, held
        for its transfers' airtime as a medium is, but shared with nothing (the shared
        medium's ablation)."""
        return replace(self, media={})

    @property
    def holdings(self) -> tuple[Holding, ...]:
        return tuple(Holding(device=d.name, layers=d.ranges,
                             embedding=d.embedding, lm_head=d.lm_head)
                     for d in self.spec.devices)


def load_net(spec: str, where: str = "net") -> NetLink:
    """A network link preset by name (``wifi``, ``ethernet-1g``, ``wan``) or a YAML path."""
    text, _ = NETS.read(spec)
    return parse_yaml(NetLink, text, f"{where} {spec}")


def load_multi(spec: str) -> MultiSystem:
    """Load a multi-system preset by name or a YAML file by path, with its devices' hardware
    and its links; every error is one `ConfigError` line."""
    text, _ = MULTI.read(spec)
    ms = parse_yaml(MultiSystemSpec, text, spec)
    systems = {}
    for d in ms.devices:
        try:
            systems[d.name] = load_hardware(d.hardware).system
        except ConfigError as exc:
            raise ConfigError(f"{spec}: devices.{d.name}.hardware: {exc}") from None
    links, media = {}, {}
    for i, ln in enumerate(ms.links):
        try:
            net = load_net(ln.net)
        except ConfigError as exc:
            raise ConfigError(f"{spec}: links[{i}].net: {exc}") from None
        key = link_name(*ln.between)
        if key in links:
            raise ConfigError(f"{spec}: links[{i}]: a link between {ln.between[0]} and "
                              f"{ln.between[1]} is already given")
        links[key] = net
        if ln.medium is not None:
            media[key] = str(ln.medium)
    return MultiSystem(spec=ms, systems=systems, links=links, media=media)


@dataclass(frozen=True, slots=True)
class PrefillResult:
    """A chunked prefill through a multi-system: TTFT (s) and every op's place in time."""

    stages: tuple[Stage, ...]
    timeline: tuple[Timed, ...]

    @property
    def ttft_s(self) -> float:
        return max(t.end_s for t in self.timeline)

    def transfer_bytes(self) -> dict[str, int]:
        """Bytes moved on each link direction (``a->b``)."""
        return link_bytes(self.timeline)

    def busy_s(self) -> dict[str, float]:
        """Busy seconds of each device and link direction (a transfer's airtime, without
        the latency it spends in flight)."""
        out: dict[str, float] = {}
        for t in self.timeline:
            out[t.op.resource] = out.get(t.op.resource, 0.0) + t.held_s
        return out


def device_footprint(model: ModelConfig, holding: Holding, prompt_tokens: int,
                     precision: Precision) -> int:
    """Bytes a device holds for a prefill: its layers' weights, its embedding/LM head, and the
    KV cache of the prompt on its layers."""
    counts = model.parameter_counts()
    layers = sum(b - a + 1 for a, b in holding.layers)
    params = layers * counts["per_layer"]
    if holding.embedding:
        params += counts["embedding"]
    if holding.lm_head:
        params += counts["final_norm"] + (counts["lm_head"] or counts["embedding"])
    kv = layers * prompt_tokens * 2 * model.num_kv_heads * model.head_dim
    return nbytes(params, precision.weight) + nbytes(kv, precision.kv)


def check_fits(ms: MultiSystem, model: ModelConfig, prompt_tokens: int,
               precision: Precision) -> None:
    """Refuse a device whose memory cannot hold what it is assigned."""
    for h in ms.holdings:
        system = ms.systems[h.device]
        need = device_footprint(model, h, prompt_tokens, precision)
        # the chips a step uses (tp x pp), not every chip the system has
        have = (system.chip.memory.capacity_bytes * system.tensor_parallel
                * system.pipeline_parallel)
        if need > have:
            raise ConfigError(f"devices.{h.device}: needs {need / 1e9:.2f} GB (weights + "
                              f"prompt KV cache of its layers), {system.name} has "
                              f"{have / 1e9:.2f} GB; move layers to another device")


def simulate_prefill(ms: MultiSystem, model: ModelConfig, *, prompt_tokens: int,
                     chunk_tokens: int | None = None, precision: Precision | None = None,
                     detail: str = "roofline", rng=None) -> PrefillResult:
    """A chunked, pipelined prefill of one ``prompt_tokens`` prompt through ``ms``
    (module docstring). Checks the split, the links and the memory first. ``rng`` (a
    `numpy.random.Generator`): sample each transfer's link jitter from it, in op order."""
    precision = Precision() if precision is None else precision
    if prompt_tokens < 1:
        raise ConfigError(f"--prompt: must be >= 1, got {prompt_tokens}")
    chunk = chunk_tokens if chunk_tokens is not None else ms.spec.chunk_tokens
    if chunk < 1:
        raise ConfigError(f"--chunk-tokens: must be >= 1, got {chunk}")
    stages = checked_route(ms, model)
    check_fits(ms, model, prompt_tokens, precision)
    ops = pipeline_ops(stages, chunk_sizes(prompt_tokens, chunk), model.hidden_size,
                       precision.activation)

    def cost(op: PipeOp) -> float:
        if op.kind == COMPUTE:
            return stage_time_s(ms.systems[op.resource], model, op.stage, op.tokens,
                                op.context, precision, detail)
        return ms.link_of(op.resource).transfer_s(op.bytes, rng)
    return PrefillResult(stages=stages, timeline=schedule_links(ms, ops, cost))


def schedule_links(ms: MultiSystem, ops, cost) -> tuple[Timed, ...]:
    """`mappers.edge.schedule_pipeline` over ``ms``'s links: a transfer holds its link
    direction, or the shared medium it sends on, for its bytes' airtime, bytes / bandwidth;
    its latency delays its arrival but not the next transfer."""
    def airtime(op) -> float:
        return op.bytes / ms.link_of(op.resource).bandwidth_bytes_per_s
    return schedule_pipeline(ops, cost, media=ms.direction_media(), airtime=airtime)


def checked_route(ms: MultiSystem, model: ModelConfig) -> tuple[Stage, ...]:
    """The split checked (`check_split`), its stages, and a link for every hop between them."""
    check_split(model.num_layers, ms.holdings)
    stages = route(model.num_layers, ms.holdings)
    for a, b in zip(stages, stages[1:]):
        if a.device != b.device and link_name(a.device, b.device) not in ms.links:
            raise ConfigError(f"links: hidden states go from {a.device} to {b.device} but no "
                              f"link joins them (add one under links:)")
    return stages


@lru_cache(maxsize=4096)
def stage_time_s(system: System, model: ModelConfig, stage: Stage, tokens: int, context: int,
                 precision: Precision, detail: str, phase: Phase = Phase.PREFILL,
                 batch: int = 1) -> float:
    """Seconds ``system`` takes for ``stage`` on a chunk of ``tokens`` new tokens over
    ``context`` cached ones: the step simulator's schedule of a model of the stage's layers,
    keeping the embedding and the LM head only where the stage holds them. The LM head runs
    for the chunk's last position only (the first output token). ``phase`` DECODE: one new
    token (``tokens`` = 1) over ``context`` cached ones. ``batch``: sequences in the step,
    each with ``tokens`` new and ``context`` cached tokens (pipelined decode of several)."""
    from sim.step import compile_step  # the simulator proper, imported on use

    sub = replace(model, num_layers=max(stage.layers, 1))
    sched = compile_step(sub, system, phase=phase, batch=batch, new_tokens=tokens,
                         context=context, precision=precision, detail=detail)
    total = 0.0
    for s in sched.ops:
        seg = s.segment
        if seg.layer >= 0:
            if stage.layers:
                total += seg.repeat * s.cost.time_s
        elif seg.name == "embed" and stage.embedding:
            total += s.cost.time_s
        elif seg.name == "head" and stage.lm_head:
            total += s.cost.time_s
    return total


def plan_split(ms: MultiSystem, model: ModelConfig, *, prompt_tokens: int,
               chunk_tokens: int | None = None, precision: Precision | None = None,
               detail: str = "roofline") -> MultiSystem:
    """``ms`` with its layers re-split by the partition planner (`mappers.edge_plan`): the
    devices, in file order, form a chain (a link between each consecutive pair); device 0
    holds the embedding, the last the LM head, each a contiguous block. Per-layer times are
    the step simulator's for one chunk at the prompt's mean context; the LM head (last chunk
    only) is spread over the chunks. The returned system is then simulated as any other."""
    from mappers.edge_plan import ChainDevice, plan_partition

    precision = Precision() if precision is None else precision
    chunk = min(chunk_tokens or ms.spec.chunk_tokens, prompt_tokens)
    chunks = len(chunk_sizes(prompt_tokens, chunk))
    names = [d.name for d in ms.spec.devices]
    hops, airs = [], []  # a hop's time to arrive, and the part of it the link is held
    for a, b in zip(names, names[1:]):
        link = ms.links.get(link_name(a, b))
        if link is None:
            raise ConfigError(f"--plan: devices {a} and {b} are consecutive in the file but "
                              f"no link joins them (the planner splits along the file's order)")
        size = nbytes(chunk * model.hidden_size, precision.activation)
        hops.append(link.transfer_s(size))
        airs.append(size / link.bandwidth_bytes_per_s)
    context = (prompt_tokens - chunk) // 2
    counts = model.parameter_counts()
    layer_bytes = nbytes(counts["per_layer"], precision.weight) + nbytes(
        prompt_tokens * 2 * model.num_kv_heads * model.head_dim, precision.kv)
    chain = []
    for k, name in enumerate(names):
        system = ms.systems[name]
        first, last = k == 0, k == len(names) - 1
        one = stage_time_s(system, model, Stage(device=name, first=0, last=0), chunk, context,
                           precision, detail)
        ends = Stage(device=name, first=0, last=-1, embedding=first, lm_head=last)
        fixed = stage_time_s(system, model, ends, chunk, context, precision, detail) \
            if first or last else 0.0
        if last:  # the LM head runs once; charge its share per chunk
            head = stage_time_s(system, model, Stage(device=name, first=0, last=-1,
                                                     lm_head=True), chunk, context,
                                precision, detail)
            fixed -= head - head / chunks
        held = Holding(device=name, layers=(), embedding=first, lm_head=last)
        chain.append(ChainDevice(layer_s=one, fixed_s=fixed, layer_bytes=layer_bytes,
                                 fixed_bytes=device_footprint(model, held, prompt_tokens,
                                                              precision),
                                 capacity_bytes=system.chip.memory.capacity_bytes
                                 * system.tensor_parallel * system.pipeline_parallel))
    plan = plan_partition(model.num_layers, chain, hops, chunks, airs)
    devices, first = [], 0
    for spec, n in zip(ms.spec.devices, plan.layers):
        devices.append(replace(spec, layers=(f"{first}-{first + n - 1}",),
                               embedding=first == 0, lm_head=first + n == model.num_layers))
        first += n
    return replace(ms, spec=replace(ms.spec, devices=tuple(devices)))
