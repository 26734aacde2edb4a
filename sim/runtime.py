"""The software stack a step runs under: kernel launches, the shortest kernel, and fusion.

A chip model costs each op as the device work it is. What a user measures also depends on the
stack that issues that work (docs/chip-model.md, "Software stack"): eager PyTorch issues every
kernel from Python, a CUDA graph replays them without the host, and a serving engine fuses
small ops into their neighbours. A `Runtime` describes one such stack:

* ``kernels``: kernels the stack launches per op of a kind (default 1), or per op of one of
  the fused projections `RUNTIME_OP_NAMES` the compiler emits as one GEMM. An unfused stack
  splits a vector op into several kernels (eager RMSNorm: cast, square, mean, add, rsqrt,
  multiply, cast, scale), and runs ``qkv_proj`` as three GEMMs (q, k, v) and
  ``gate_up_proj`` (and a MoE's ``shared_gate_up``) as two; such a GEMM keeps its device
  time (a memory-bound GEMV reads the same bytes in parts), its parts pay their kernels'
  fixed time.
* ``traffic``: DRAM bytes the stack moves per op of a kind, as a multiple of the fused op's
  (default 1). Each kernel of an unfused op is its own pass over its tensors, some in fp32, so
  the op takes that multiple of its device time (it is memory-bound), of its DRAM bytes and of
  its energy (an overestimate by the op's small compute energy).
* ``fuse``: op kinds that run inside a neighbouring kernel: they launch nothing of their own.
* ``decompositions``: the work decompositions of a GEMM over the cores that the stack's GEMM
  library runs (`sim.units.systolic.tile`, default all of `DECOMPOSITIONS`). cuBLAS, which
  PyTorch's ``nn.Linear`` calls, splits the K loop of a GEMM with fewer output tiles than SMs
  and sums the parts in a second kernel (cuBLASLt's split-K reduction schemes,
  ``CUBLASLT_REDUCTION_SCHEME_*``; the reduction kernels appear by name in the profile of
  `benchmarks/calibration/h100-measured.json`); CUTLASS's stream-K fixes up partial tiles
  inside one kernel. Leaving ``stream-k`` out makes a decode GEMV with few tiles split K and
  pay the second kernel's fixed time (``min_kernel_s``), which also weighs in the choice.
* ``gemm_min_tile_n``: the narrowest output tile (along N, a layer's output features) of the
  GEMM library's kernels (default 1: any). cuBLAS's Hopper kernels for a few tokens tile 64
  output features by 8 tokens (``nvjet_sm90_hsh_64x8_...`` in the profile), so a 4096-wide
  GEMV has 64 tiles for 132 SMs and splits K in two, while an 11008-wide one does not.
* ``launch_s``: host time to issue one kernel. Issue is asynchronous, so it overlaps device
  work, but a kernel's slot on the stream lasts at least this long.
* ``min_kernel_s``: the fixed device time of one kernel, its gap to the next included: what a
  kernel with no work takes. A kernel's work comes on top (kernels on one stream run one
  after another, and a kernel's start-up and drain do not overlap its own work).

An op of ``n`` kernels therefore takes ``max(device time + n x min_kernel_s, n x launch_s)``.
The runtime replaces the chip's ``efficiency.op_overhead_s`` when one is given.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache

from mappers.ir import Op, OpKind

from sim.cost import Cost
from sim.errors import ConfigError
from sim.shipped import Shelf

#: Op kinds a runtime can name in ``fuse`` and ``kernels``.
RUNTIME_OP_KINDS = tuple(k.value for k in OpKind)
#: GEMMs the compiler fuses (`mappers.lower`) that a stack may launch in parts (``kernels``).
RUNTIME_OP_NAMES = ("qkv_proj", "gate_up_proj", "shared_gate_up")

#: GEMM work decompositions (`sim.units.systolic.tile._search`): whole output tiles per core,
#: split-K (a second kernel reduces the K parts) and stream-K (fixed up inside one kernel).
DECOMPOSITIONS = ("tiles", "split-k", "stream-k")

RUNTIMES = Shelf(package="sim", folder="presets/runtime", suffixes=(".yaml", ".yml"),
                 flag="--runtime", noun="runtime preset")


@dataclass(frozen=True, slots=True, kw_only=True)
class Runtime:
    """One software stack (module docstring); times in seconds."""

    name: str
    launch_s: float = 0.0
    min_kernel_s: float = 0.0
    fuse: tuple[str, ...] = ()
    kernels: tuple[tuple[str, int], ...] = ()
    traffic: tuple[tuple[str, float], ...] = ()
    decompositions: tuple[str, ...] = DECOMPOSITIONS
    gemm_min_tile_n: int = 1
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("name: must not be empty")
        for field in ("launch_s", "min_kernel_s"):
            value = getattr(self, field)
            if not value >= 0:
                raise ConfigError(f"{field}: must be >= 0, got {value}")
        for kind in self.fuse:
            if kind not in RUNTIME_OP_KINDS:
                raise ConfigError(f"fuse: unknown op kind {kind!r} "
                                  f"(allowed: {', '.join(RUNTIME_OP_KINDS)})")
        for kind, count in self.kernels:
            if kind not in RUNTIME_OP_KINDS + RUNTIME_OP_NAMES:
                raise ConfigError(f"kernels.{kind}: unknown op kind or name (allowed: "
                                  f"{', '.join(RUNTIME_OP_KINDS + RUNTIME_OP_NAMES)})")
            if count < 1:
                raise ConfigError(f"kernels.{kind}: must be >= 1, got {count} (list the kind "
                                  f"in fuse to launch no kernel of its own)")
            if kind in self.fuse:
                raise ConfigError(f"kernels.{kind}: also in fuse; a fused kind launches none")
        for dec in self.decompositions:
            if dec not in DECOMPOSITIONS:
                raise ConfigError(f"decompositions: unknown decomposition {dec!r} "
                                  f"(allowed: {', '.join(DECOMPOSITIONS)})")
        if self.gemm_min_tile_n < 1:
            raise ConfigError(f"gemm_min_tile_n: must be >= 1, got {self.gemm_min_tile_n}")
        if "tiles" not in self.decompositions:
            raise ConfigError("decompositions: must include 'tiles' (every GEMM can run as "
                              "whole output tiles)")
        for kind, factor in self.traffic:
            if kind not in RUNTIME_OP_KINDS:
                raise ConfigError(f"traffic.{kind}: unknown op kind "
                                  f"(allowed: {', '.join(RUNTIME_OP_KINDS)})")
            if not factor >= 1:
                raise ConfigError(f"traffic.{kind}: must be >= 1 (a multiple of the fused "
                                  f"op's bytes), got {factor}")

    @property
    def kernel_s(self) -> float:
        """Time one more kernel adds to a step on this stack (its slot on the stream)."""
        return max(self.min_kernel_s, self.launch_s)

    def part(self, op: Op) -> tuple[Op, int]:
        """The GEMM the stack launches for each of the ``p`` parts of a fused projection
        (``kernels``, `RUNTIME_OP_NAMES`), and ``p``: ``(op, 1)`` for any other op. The parts
        are taken as equal slices of the output features (exact for q/k/v of multi-head
        attention and for gate/up; with grouped-query heads q is wider than k and v). Each part
        is its own GEMM, so its tile mapping (split-K or not) is that of its own width."""
        p = dict(self.kernels).get(op.name, 1) if op.name in RUNTIME_OP_NAMES else 1
        if p == 1 or op.kind != OpKind.GEMM or op.dims[1] % p:
            return op, 1
        m, n, k = op.dims
        return dataclasses.replace(op, dims=(m, n // p, k), flops=op.flops // p,
                                   weight_bytes=op.weight_bytes // p,
                                   act_bytes=2 * (m * k + m * n // p) * op.act_bytes
                                   // (2 * (m * k + m * n))), p

    def kernels_of(self, op: Op) -> int:
        """Kernels this stack launches for one instance of ``op``."""
        if op.launches == 0 or op.kind.value in self.fuse:
            return 0
        counts = dict(self.kernels)
        return op.launches * counts.get(op.name, counts.get(op.kind.value, 1))

    def apply(self, op: Op, cost: Cost) -> Cost:
        """``cost`` (device work without any per-op overhead) as this stack runs it."""
        n = self.kernels_of(op) * cost.kernels
        passes = dict(self.traffic).get(op.kind.value, 1.0)
        device = cost.time_s * passes
        # each kernel's fixed device time is serial with its work (a kernel starts when the
        # one before it ends); the host's issue overlaps device work (asynchronous launches)
        time = max(device + n * self.min_kernel_s, n * self.launch_s)
        if time == cost.time_s:
            return cost
        bound = cost.bound if device >= n * max(self.min_kernel_s, self.launch_s) else "runtime"
        return dataclasses.replace(cost, time_s=time, bound=bound,
                                   dram_bytes=cost.dram_bytes * passes,
                                   energy_j=cost.energy_j * passes)


def runtime_names() -> tuple[str, ...]:
    """Names of the shipped runtime presets, sorted."""
    return RUNTIMES.names()


@lru_cache(maxsize=64)
def load_runtime(spec: str) -> Runtime:
    """A runtime preset by name (``cuda-graph``) or a YAML file by path."""
    from sim.schema import parse_yaml

    text, _ = RUNTIMES.read(spec)
    return parse_yaml(Runtime, text, spec)


def check_runtime(system) -> None:
    """Refuse a `sim.hardware.System` whose ``runtime`` names no preset or readable file, with
    the field named (called where systems are loaded: `sim.hardware` cannot import this)."""
    if system.runtime is None:
        return
    try:
        load_runtime(system.runtime)
    except ConfigError as exc:
        raise ConfigError(f"runtime: {str(exc).removeprefix('--runtime: ')}") from None
