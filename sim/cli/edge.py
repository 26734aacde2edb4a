"""``pdsim edge``: a chunked, pipelined prefill of one prompt through a multi-system file
(devices joined by network links, each holding some of the model's layers; docs/edge.md)."""

from __future__ import annotations

import argparse
import json


def add_commands(sub) -> dict:
    """Add ``pdsim edge`` to the subparsers ``sub``; return its handler."""
    from sim.argtypes import dtype, int_at_least

    p = sub.add_parser(
        "edge", help="pipelined prefill over devices joined by network links",
        description="Split a model's layers over the devices of a multi-system file, stream "
        "the prompt through them in chunks (chunk c on one device overlaps chunk c+1 on the "
        "one before; links send while devices compute) and print the TTFT, each device's and "
        "link's busy time and the bytes each link moved (docs/edge.md).")
    p.add_argument("--system-file", required=True, metavar="MULTI",
                   help="multi-system preset (orin-pair-1gbe, hat-ushape) or YAML file")
    p.add_argument("--model", help="shipped model or config.json (default: the file's model)")
    p.add_argument("--prompt", type=int_at_least(1), default=2048,
                   help="prompt tokens (default 2048)")
    p.add_argument("--chunk-tokens", type=int_at_least(1), metavar="N",
                   help="tokens per prompt chunk (default: the file's chunk_tokens)")
    p.add_argument("--dtype", type=dtype, default="fp16",
                   help="weights, activations and KV cache (default fp16)")
    p.add_argument("--detail", choices=("roofline", "tile"), default="roofline",
                   help="chip model for each stage (default roofline)")
    p.add_argument("--plan", action="store_true", help="re-split the layers with the "
                   "partition planner (contiguous blocks in the file's device order, least "
                   "modelled TTFT under each device's memory) before simulating")
    p.add_argument("-o", "--out", metavar="JSON", help="also write the timeline as JSON")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    return {"edge": _edge}


def _edge(args: argparse.Namespace, argv: list[str]) -> int:
    from mappers.ir import Precision
    from mappers.models import load_model
    from sim.edge import load_multi, plan_split, simulate_prefill
    from sim.errors import ConfigError
    from sim.files import atomic_text, check_output

    if args.out is not None:
        check_output(args.out, "-o")
    ms = load_multi(args.system_file)
    name = args.model or ms.spec.model
    if name is None:
        raise ConfigError("--model: the multi-system file names no model; give --model")
    model = load_model(name).config
    precision = Precision(weight=args.dtype, activation=args.dtype, kv=args.dtype)
    if args.plan:
        ms = plan_split(ms, model, prompt_tokens=args.prompt, chunk_tokens=args.chunk_tokens,
                        precision=precision, detail=args.detail)
    result = simulate_prefill(ms, model, prompt_tokens=args.prompt,
                              chunk_tokens=args.chunk_tokens, precision=precision,
                              detail=args.detail)
    summary = {"system": ms.spec.name, "model": model.name, "prompt_tokens": args.prompt,
               "chunk_tokens": args.chunk_tokens or ms.spec.chunk_tokens,
               "ttft_s": result.ttft_s, "busy_s": result.busy_s(),
               "link_bytes": result.transfer_bytes(),
               "stages": [f"{s.device}:{_layers(s)}" for s in result.stages]}
    if args.out is not None:
        rows = [{"kind": t.op.kind, "chunk": t.op.chunk, "resource": t.op.resource,
                 "bytes": t.op.bytes, "start_s": t.start_s, "end_s": t.end_s}
                for t in result.timeline]
        atomic_text(args.out, json.dumps({**summary, "timeline": rows}, indent=1) + "\n")
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    print(f"{ms.spec.name}: {model.name}, {args.prompt}-token prompt in chunks of "
          f"{summary['chunk_tokens']}")
    print("route: " + " -> ".join(summary["stages"]))
    print(f"TTFT: {result.ttft_s * 1e3:.2f} ms")
    for res, busy in summary["busy_s"].items():
        moved = summary["link_bytes"].get(res)
        extra = f", {moved / 1e6:.2f} MB moved" if moved is not None else ""
        print(f"  {res:<24} busy {busy * 1e3:9.2f} ms "
              f"({100 * busy / result.ttft_s:5.1f}% of TTFT){extra}")
    return 0


def _layers(stage) -> str:
    parts = []
    if stage.embedding:
        parts.append("embed")
    if stage.layers:
        parts.append(f"L{stage.first}-{stage.last}")
    if stage.lm_head:
        parts.append("head")
    return "+".join(parts)
