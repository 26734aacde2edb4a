"""``pdsim train``: one training step (full fine-tuning or LoRA) of a model on a system:
step time, FLOPs by part of the step and memory by class (docs/training.md). Prints only;
writes no file."""

from __future__ import annotations

import argparse
import math

from sim.argtypes import dtype as _dtype, int_at_least as _int_at_least
from sim.errors import PdsimError


def add_commands(sub) -> dict:
    """Add ``pdsim train`` to the subparsers ``sub``; return its handler."""
    from mappers.train import LORA_TARGETS, OPTIMIZER_DTYPES, RECOMPUTE, REUSE

    p = sub.add_parser(
        "train", help="cost one training step (forward, backward, optimizer update)",
        description="Lower one training step (forward, backward, AdamW update; full "
        "fine-tuning or LoRA) to ops, cost them on the hardware's unit models and print the "
        "step time, FLOPs by part of the step and memory by class (docs/training.md).")
    p.add_argument("--hw", default="h100", help="hardware preset or YAML file (default h100)")
    p.add_argument("--model", default="llama2-7b", help="shipped model or config.json "
                   "(default llama2-7b)")
    p.add_argument("--batch", type=_int_at_least(1), default=1, help="sequences (default 1)")
    p.add_argument("--seq", type=_int_at_least(1), default=2048,
                   help="tokens per sequence (default 2048)")
    p.add_argument("--lora-rank", type=_int_at_least(1), metavar="R",
                   help="LoRA adapters of rank R (default: full fine-tuning)")
    p.add_argument("--lora-targets", metavar="T,T", help=f"projections that get adapters, "
                   f"from {','.join(LORA_TARGETS)} (default q,v; needs --lora-rank)")
    p.add_argument("--recompute", choices=RECOMPUTE, default="none",
                   help="activation recomputation: none (keep every activation) or full "
                   "(keep layer inputs, recompute each layer before its backward)")
    p.add_argument("--reuse", choices=REUSE, default="none",
                   help="activations: the sequences' prefill was recorded by serving "
                   "(Alchemist), so the layers' forward is not run (default none)")
    p.add_argument("--pcie-bytes-per-s", type=_positive_float, metavar="BW",
                   help="with --reuse activations: the records were offloaded to the host and "
                   "are read back over PCIe at BW bytes/s, layer by layer before each "
                   "backward (default: kept on the chip, no read-back)")
    p.add_argument("--optimizer-dtype", choices=OPTIMIZER_DTYPES, default="fp32",
                   help="AdamW m, v and master weights (default fp32)")
    p.add_argument("--dtype", type=_dtype, default="bf16",
                   help="weights, gradients and activations (default bf16)")
    p.add_argument("--tp", type=_int_at_least(1), help="tensor-parallel chips (default: the "
                   "preset's tensor_parallel)")
    p.add_argument("--detail", choices=("tile", "roofline"), default="tile",
                   help="unit models (default tile)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return {"train": _train}


def _records(spec, pcie_bytes_per_s: float | None) -> str | None:
    """Where a reuse step's recorded activations are (None without reuse)."""
    if spec.reuse == "none":
        return None
    if pcie_bytes_per_s is None:
        return "on the chip (no --pcie-bytes-per-s: no read-back)"
    return f"on the host, read back over PCIe at {pcie_bytes_per_s:.4g} B/s"


def _positive_float(text: str) -> float:
    """A finite number > 0 (bytes/s)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of bytes/s, got {text!r}")
    return value


def _spec(args: argparse.Namespace):
    from mappers.train import TrainSpec

    targets = ("q", "v")
    if args.lora_targets is not None:
        if args.lora_rank is None:
            raise PdsimError("--lora-targets: needs --lora-rank")
        targets = tuple(t.strip() for t in args.lora_targets.split(","))
    if args.pcie_bytes_per_s is not None and args.reuse != "activations":
        raise PdsimError("--pcie-bytes-per-s: needs --reuse activations")
    return TrainSpec(batch=args.batch, seq=args.seq, lora_rank=args.lora_rank,
                     lora_targets=targets, recompute=args.recompute,
                     reuse=args.reuse, optimizer_dtype=args.optimizer_dtype)


def _train(args: argparse.Namespace, argv: list[str]) -> int:
    from mappers.ir import Precision
    from mappers.models import load_model
    from mappers.train import check_trainable

    from sim.cli.main import _parallel
    from sim.presets import load_hardware
    from sim.text import seconds, si, table, to_json
    from sim.train import train_step

    spec = _spec(args)  # every check before any simulation
    system = load_hardware(args.hw).system
    if args.tp is not None:
        system = _parallel(system, args.tp, None)
    model = load_model(args.model).config
    check_trainable(model, spec, pp=system.pipeline_parallel)
    precision = Precision(weight=args.dtype, activation=args.dtype, kv=args.dtype)
    result = train_step(system, model, spec, precision=precision, detail=args.detail,
                        pcie_bytes_per_s=args.pcie_bytes_per_s)
    out = result.as_dict()
    if args.json:
        print(to_json({"hw": system.name, "model": model.name, "batch": spec.batch,
                       "seq": spec.seq, "lora_rank": spec.lora_rank,
                       "lora_targets": list(spec.lora_targets) if spec.lora else None,
                       "recompute": spec.recompute, "reuse": spec.reuse,
                       "optimizer_dtype": spec.optimizer_dtype,
                       "records": _records(spec, args.pcie_bytes_per_s),
                       "dtype": args.dtype, "tp": system.tensor_parallel, **out}))
        return 0
    mode = (f"LoRA r={spec.lora_rank} on {','.join(spec.lora_targets)}" if spec.lora
            else "full fine-tuning")
    print(f"{model.name} on {system.name} (tp {system.tensor_parallel}): {mode}, batch "
          f"{spec.batch} x seq {spec.seq}, recompute {spec.recompute}, reuse {spec.reuse}, "
          f"AdamW state {spec.optimizer_dtype}, {args.dtype} weights and activations")
    if spec.reuse != "none":
        print(f"recorded activations: {_records(spec, args.pcie_bytes_per_s)}")
    rows = [("step time", seconds(result.time_s)),
            ("throughput", f"{result.tokens_per_s:.4g} tokens/s")]
    if result.prefetch is not None:
        rb = out["readback"]
        rows += [("read back over PCIe", si(rb["bytes"], "B")),
                 ("a layer: transfer / backward",
                  f"{seconds(rb['layer_transfer_s'])} / {seconds(rb['layer_backward_s'])}"),
                 ("added by the read-back", seconds(result.readback_s))]
    print(table(rows, "step"))
    flops = out["flops"]
    print(table([(k, si(v, "FLOP")) for k, v in flops.items()], "FLOPs by part (per chip)"))
    print(table([(k, seconds(v)) for k, v in result.op_time_s.items()],
                "op time by part (per chip)"))
    mem = out["memory_bytes"]
    fits = "fits" if out["fits"] else "does NOT fit"
    print(table([(k, si(v, "B")) for k, v in mem.items()],
                f"memory by class (per chip; {fits} in {si(result.capacity_bytes, 'B')})"))
    return 0
