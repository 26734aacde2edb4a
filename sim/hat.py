"""HAT: many devices sharing a cloud through U-shaped splits with speculative decoding and
prompt chunking (Xie et al., arXiv 2503.18989; docs/edge.md, "HAT"), and its baselines.

Each device runs its requests one after another (closed loop). The modes:

* ``hat``: prefill in chunks (size chosen per prompt, `choose_chunk`): per chunk the device
  runs the embedding and first k layers, sends the chunk's hidden states up, the cloud runs
  the middle layers (a job batched with other devices' jobs), the states come back and the
  device runs the last m layers (the LM head on the last chunk's last position gives the first
  token). The device also runs its draft's own layers (adapter + last m) over the prompt.
  Decode in rounds: gamma draft steps on the device, the first k layers for the last draft,
  gamma + 1 hidden states up, a verify job of gamma + 1 tokens on the cloud, gamma + 1 states
  down, the last m layers + LM head on gamma + 1 positions; accepted drafts per round from
  `sim.speculative.sample_accepted` (i.i.d. rate ``accept``, seeded per device).
* ``hat-nochunk``: the same with the prompt as one chunk.
* ``ushape``: one chunk, no speculation: each token crosses the WAN twice.
* ``cloud``: tokens over the WAN (4-byte ids), the whole model on the cloud; generated tokens
  stream down (the cloud does not wait for the device between tokens).
* ``device``: a model (``device_model``, default the target) entirely on the device.

Cloud instances are ``cloud_gpus`` replicas (tp 1) of the middle layers (or of the whole model
for ``cloud``); device ``i`` uses instance ``i mod cloud_gpus``; each batches the jobs queued
when it goes idle (`sim.hat_events`). Each device has its own uplink and downlink.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mappers.edge import chunk_sizes, hidden_bytes
from mappers.hat import (TOKEN_ID_BYTES, UShape, cloud_bytes, device_bytes, layer_bytes,
                         verify_positions)
from mappers.ir import Precision
from mappers.models import ModelConfig
from sim.edge import NetLink
from sim.errors import ConfigError
from sim.hardware import System
from sim.hat_cost import DevicePieces, FullTable, MiddleTable, WholeModel
from sim.hat_events import (CLOUD, DEVICE, TRANSFER, Cloud, Instance, Join, Loop, Resource,
                            Spawn, Use, critical_path)

MODES = ("hat", "hat-nochunk", "ushape", "cloud", "device")


@dataclass(frozen=True, slots=True, kw_only=True)
class HatSetup:
    """Devices (one `System` each), the cloud GPU and how many, the WAN link of every device,
    the split, the draft length and acceptance rate, and the device-only baseline's model."""

    model: ModelConfig
    devices: tuple[System, ...]
    cloud: System
    cloud_gpus: int
    link: NetLink
    split: UShape
    gamma: int = 4
    accept: float = 0.8
    precision: Precision = Precision()
    detail: str = "roofline"
    max_tokens: int = 2048
    seed: int = 0
    device_model: ModelConfig | None = None

    def __post_init__(self) -> None:
        if not self.devices:
            raise ConfigError("--devices: must be >= 1")
        if self.cloud_gpus < 1:
            raise ConfigError(f"--cloud-gpus: must be >= 1, got {self.cloud_gpus}")
        if self.gamma < 1:
            raise ConfigError(f"--gamma: draft tokens per round must be >= 1, got {self.gamma}")
        if not 0.0 <= self.accept <= 1.0:
            raise ConfigError(f"--accept: the per-token acceptance rate must be in [0, 1], "
                              f"got {self.accept}")
        if self.split.num_layers != self.model.num_layers:
            raise ConfigError(f"--k/--m: the split is of {self.split.num_layers} layers, "
                              f"{self.model.name} has {self.model.num_layers}")
        if self.max_tokens < 1:
            raise ConfigError(f"--max-tokens: must be >= 1, got {self.max_tokens}")


@dataclass(frozen=True, slots=True)
class Job:
    """One request of device ``device``: issued at ``start_s`` at the earliest (after the
    device's previous request), ``prompt`` tokens in, ``gen`` tokens out."""

    device: int
    start_s: float
    prompt: int
    gen: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """A finished request: its job, chunk size, TTFT and TBT (s), and each latency's critical
    path split by kind (`sim.hat_events.KINDS`; the decode split is per token)."""

    job: Job
    chunk: int
    ttft_s: float
    tbt_s: float
    ttft_split: dict
    tbt_split: dict
    uplink_bytes: int
    downlink_bytes: int


class Runner:
    """Runs ``jobs`` of a `HatSetup` in one mode (module docstring)."""

    def __init__(self, setup: HatSetup, mode: str) -> None:
        if mode not in MODES:
            raise ConfigError(f"--mode: must be one of {', '.join(MODES)}, got {mode!r}")
        self.s, self.mode = setup, mode
        p, m = setup.precision, setup.model
        self.pieces = [DevicePieces(d, m, setup.split, p, setup.detail) for d in setup.devices]
        small = setup.device_model or m
        self.whole = [WholeModel(d, small, p, setup.detail) for d in setup.devices]
        self._chunks: dict = {}
        self._tables: dict = {}

    # -- checks --------------------------------------------------------------------------
    def check(self, jobs: list[Job]) -> None:
        """Refuse jobs that do not fit: the device's part (or whole model) on each device,
        the cloud's share on each instance (one sequence per device at a time)."""
        s, mode = self.s, self.mode
        most = {}
        for j in jobs:
            most[j.device] = max(most.get(j.device, 0), j.prompt + j.gen + s.gamma)
        if mode == "device":
            small = s.device_model or s.model
            sizes = layer_bytes(small, s.precision)
            for d, tokens in most.items():
                need = (sizes.embedding + sizes.head + small.num_layers
                        * (sizes.layer + tokens * sizes.kv_token_layer))
                _fits(f"devices[{d}]", need, s.devices[d], f"{small.name} with its KV cache")
            return
        sizes = layer_bytes(s.model, s.precision)
        if mode != "cloud":
            for d, tokens in most.items():
                _fits(f"devices[{d}]", device_bytes(s.split, sizes, tokens), s.devices[d],
                      f"its {s.split.first} + {s.split.last} layers, adapter, embedding, "
                      f"LM head and KV caches")
        for g in range(s.cloud_gpus):
            seqs = [t for d, t in most.items() if d % s.cloud_gpus == g]
            if mode == "cloud":
                need = (sizes.embedding + sizes.head + s.model.num_layers
                        * (sizes.layer + sum(seqs) * sizes.kv_token_layer))
            else:  # one copy of the middle layers, every sequence's KV on them
                need = s.split.middle * sizes.layer + sum(
                    cloud_bytes(s.split, sizes, t) - s.split.middle * sizes.layer
                    for t in seqs)
            _fits(f"cloud[{g}]", need, s.cloud, "its layers and its devices' KV caches")

    # -- cloud ---------------------------------------------------------------------------
    def _table(self):
        key = "full" if self.mode == "cloud" else "middle"
        if key not in self._tables:
            s = self.s
            self._tables[key] = (FullTable(s.model, s.cloud, precision=s.precision,
                                           detail=s.detail) if key == "full" else
                                 MiddleTable(s.model, s.cloud, s.split.middle,
                                             precision=s.precision, detail=s.detail))
        return self._tables[key]

    def _instances(self) -> list[Instance]:
        table = self._table()
        return [Instance(f"cloud{g}", table.step, self.s.max_tokens)
                for g in range(self.s.cloud_gpus)]

    # -- chunk size ----------------------------------------------------------------------
    def choose_chunk(self, device: int, prompt: int) -> tuple[int, dict[int, float]]:
        """The chunk size of least TTFT for a ``prompt``-token prompt on ``device`` alone
        with an idle cloud instance (candidates `sim.edge_run.chunk_candidates`, which
        include the whole prompt: one chunk), ties to the larger; with every TTFT tried."""
        from sim.edge_run import chunk_candidates

        key = (self.s.devices[device], prompt)
        if key not in self._chunks:
            tried = {c: self.alone_ttft(device, prompt, c) for c in chunk_candidates(prompt)}
            best = min(tried, key=lambda c: (tried[c], -c))
            self._chunks[key] = (best, tried)
        return self._chunks[key]

    def alone_ttft(self, device: int, prompt: int, chunk: int) -> float:
        """TTFT (s) of one prefill in chunks of ``chunk`` on ``device`` with the cloud idle."""
        loop, out = Loop(), {}
        inst = Instance("alone", self._table().step, self.s.max_tokens)
        res = _Links(device)
        loop.start(self._prefill(device, prompt, chunk, inst, res, out))
        loop.run()
        return out["first"].end

    # -- programs ------------------------------------------------------------------------
    def _send(self, link: Resource, size: int) -> Use:
        """``size`` bytes over one direction of the device's WAN link: held for the bytes'
        serialisation, then the link's one-way latency in flight (`NetLink.transfer_s` is
        their sum)."""
        bw, lat = self.s.link.bandwidth_bytes_per_s, self.s.link.latency_s
        return Use(link, size / bw, TRANSFER, size, latency=lat)

    def _stream(self, link: Resource):
        yield self._send(link, TOKEN_ID_BYTES)

    def _prefill(self, d: int, prompt: int, chunk: int, inst: Instance, r: _Links, out: dict):
        pc, kids, ctx = self.pieces[d], [], 0
        sizes = chunk_sizes(prompt, chunk)
        for i, n in enumerate(sizes):
            yield Use(r.dev, pc.first(n, ctx), DEVICE)
            kid = yield Spawn(self._chunk(d, n, ctx, i == len(sizes) - 1, inst, r, out))
            kids.append(kid)
            ctx += n
        if self.mode != "ushape":  # the draft's own layers over the prompt (no draft else)
            yield Use(r.dev, pc.draft_prefill(prompt, 0), DEVICE)
        yield Join(tuple(kids))

    def _chunk(self, d, n, ctx, last, inst, r, out):
        pc = self.pieces[d]
        b = hidden_bytes(n, self.s.model.hidden_size, self.s.precision.activation)
        yield self._send(r.up, b)
        yield Cloud(inst, n, ctx)
        yield self._send(r.down, b)
        op = yield Use(r.dev, pc.last(n, ctx, 1 if last else 0), DEVICE)
        if last:
            out["first"] = op

    def _decode(self, d: int, job: Job, inst: Instance, r: _Links, counts, out: dict):
        pc, s = self.pieces[d], self.s
        spec = self.mode in ("hat", "hat-nochunk")
        g = s.gamma if spec else 0
        rows = verify_positions(g) if spec else 1
        b = hidden_bytes(rows, s.model.hidden_size, s.precision.activation)
        made, ctx, i, op = 1, job.prompt, 0, out["first"]
        while made < job.gen:
            draft = sum(pc.draft_step(ctx + j) for j in range(g))
            # the first k layers of the position not yet through them (the last draft, or
            # the token just sampled without speculation)
            yield Use(r.dev, draft + pc.first(1, ctx + g), DEVICE)
            yield self._send(r.up, b)
            yield Cloud(inst, rows, ctx)
            yield self._send(r.down, b)
            op = yield Use(r.dev, pc.last(rows, ctx, rows), DEVICE)
            tok = min((int(counts[i % len(counts)]) if spec else 0) + 1, job.gen - made)
            made, ctx, i = made + tok, ctx + tok, i + 1
        out["last"] = op

    def _cloud_only(self, job: Job, inst: Instance, r: _Links, out: dict):
        yield self._send(r.up, job.prompt * TOKEN_ID_BYTES)
        yield Cloud(inst, job.prompt, 0)
        # generated tokens stream down while the cloud goes on to the next
        first = last = yield Spawn(self._stream(r.down))
        for i in range(1, job.gen):
            yield Cloud(inst, 1, job.prompt + i - 1)
            last = yield Spawn(self._stream(r.down))
        yield Join((first, last))
        out["first"], out["last"] = first.last, last.last

    def _device_only(self, d: int, job: Job, r: _Links, out: dict):
        w = self.whole[d]
        out["first"] = yield Use(r.dev, w.step(job.prompt, 0), DEVICE)
        out["last"] = out["first"]
        for i in range(1, job.gen):
            out["last"] = yield Use(r.dev, w.step(1, job.prompt + i - 1), DEVICE)

    def _device(self, d: int, jobs: list[Job], inst: Instance, results: list):
        r = _Links(d)
        rng = np.random.default_rng(self.s.seed + d)
        from sim.speculative import sample_accepted
        for job in jobs:
            if job.start_s > self.loop.now:
                yield Use(Resource("idle"), job.start_s - self.loop.now, "idle")
            t0, out = self.loop.now, {}
            chunk = job.prompt
            up0, down0 = r.up_bytes(), r.down_bytes()
            if self.mode == "cloud":
                yield from self._cloud_only(job, inst, r, out)
            elif self.mode == "device":
                yield from self._device_only(d, job, r, out)
            else:
                if self.mode == "hat":
                    chunk = self.choose_chunk(d, job.prompt)[0]
                yield from self._prefill(d, job.prompt, chunk, inst, r, out)
                counts = sample_accepted(self.s.accept, self.s.gamma, max(job.gen, 1),
                                         int(rng.integers(2**31)))
                yield from self._decode(d, job, inst, r, counts, out)
            first, last = out["first"], out["last"]
            ttft, end = first.end - t0, last.end
            n = job.gen - 1
            results.append(Outcome(
                job, chunk, ttft, (end - first.end) / n if n else 0.0,
                critical_path(first, t0),
                {k: v / n for k, v in critical_path(last, first.end).items()} if n else {},
                r.up_bytes() - up0, r.down_bytes() - down0))

    def run(self, jobs: list[Job]) -> list[Outcome]:
        """Simulate every job (each device's in order of ``start_s``); outcomes in job order
        of completion per device, devices in order."""
        self.check(jobs)
        self.loop = Loop()
        insts = self._instances()
        per: dict[int, list] = {}
        for j in sorted(jobs, key=lambda j: (j.device, j.start_s)):
            per.setdefault(j.device, []).append(j)
        results: dict[int, list] = {d: [] for d in per}
        for d, js in per.items():
            self.loop.start(self._device(d, js, insts[d % len(insts)], results[d]))
        self.loop.run()
        self.instances, self.makespan_s = insts, self.loop.now
        return [o for d in sorted(results) for o in results[d]]


class _Links:
    """A device's GPU, uplink and downlink timelines."""

    def __init__(self, d: int) -> None:
        self.dev, self.up, self.down = (Resource(f"{k}{d}") for k in ("dev", "up", "down"))

    def up_bytes(self) -> int:
        return self.up.moved

    def down_bytes(self) -> int:
        return self.down.moved


def plan_split(setup: HatSetup, device: int, prompt: int, gen: int, max_layers: int = 4
               ) -> tuple[UShape, float]:
    """The ``(k, m)`` (each 1..``max_layers``) of least end-to-end latency (s) for one
    ``prompt``/``gen`` request on ``device`` alone (``hat`` mode), among the splits whose
    device part fits its memory (`mappers.hat.plan_ushape`). The acceptance rate does not
    depend on k and m in this model, so only speed and memory decide."""
    from dataclasses import replace

    from mappers.hat import plan_ushape

    system = setup.devices[device]
    cap = system.chip.memory.capacity_bytes * system.tensor_parallel * system.pipeline_parallel
    one = replace(setup, devices=(system,), cloud_gpus=1)

    def cost(k: int, m: int) -> float:
        split = UShape(num_layers=setup.model.num_layers, first=k, last=m,
                       adapter=setup.split.adapter)
        out = Runner(replace(one, split=split), "hat").run([Job(0, 0.0, prompt, gen)])[0]
        return out.ttft_s + (gen - 1) * out.tbt_s
    n = setup.model.num_layers
    pairs = [(k, m) for k in range(1, max_layers + 1) for m in range(1, max_layers + 1)
             if k + m < n]
    return plan_ushape(n, layer_bytes(setup.model, setup.precision), cap,
                       prompt + gen + setup.gamma, cost, setup.split.adapter, pairs)


def _fits(where: str, need: int, system: System, what: str) -> None:
    have = system.chip.memory.capacity_bytes * system.tensor_parallel * system.pipeline_parallel
    if need > have:
        raise ConfigError(f"{where}: needs {need / 1e9:.2f} GB ({what}), {system.name} has "
                          f"{have / 1e9:.2f} GB")


__all__ = ["CLOUD", "HatSetup", "Job", "MODES", "Outcome", "Runner"]
