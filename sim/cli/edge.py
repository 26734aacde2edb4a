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
                   "modelled TTFT under each device's memory) before simulating; without "
                   "--chunk-tokens it also picks the chunk size (one chunk included)")
    p.add_argument("--gen", type=int_at_least(1), default=1, metavar="N",
                   help="tokens to generate (default 1: the prefill's); N > 1 adds N-1 decode "
                   "steps, each token crossing every device, and reports TBT and end-to-end")
    p.add_argument("--sequences", type=int_at_least(1), default=1, metavar="S",
                   help="sequences decoded after the prefill (default 1), each with its own KV "
                   "cache, pipelined over the devices in --micro-batches groups (default "
                   "min(S, devices)); needs --gen N > 1")
    p.add_argument("--seed", type=int_at_least(0), help="sample link jitter from a numpy "
                   "generator of this seed (default: no jitter, every transfer pays the mean "
                   "latency)")
    p.add_argument("-o", "--out", metavar="JSON", help="also write the timeline as JSON")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    from sim.cli.edge_jupiter import add_flags
    add_flags(p)  # --compare: Jupiter and its baselines (docs/edge.md, "Jupiter")
    return {"edge": _edge}


def _edge(args: argparse.Namespace, argv: list[str]) -> int:
    from mappers.ir import Precision
    from mappers.models import load_model
    from sim.edge import load_multi
    from sim.edge_run import choose_chunk, generator, simulate_decode
    from sim.errors import ConfigError
    from sim.cli.edge_jupiter import check_flags, compare
    from sim.files import check_output

    _check_sequences(args)
    check_flags(args, argv)
    if args.out is not None:
        check_output(args.out, "-o")
    ms = load_multi(args.system_file)
    name = args.model or ms.spec.model
    if name is None:
        raise ConfigError("--model: the multi-system file names no model; give --model")
    model = load_model(name).config
    precision = Precision(weight=args.dtype, activation=args.dtype, kv=args.dtype)
    if args.compare:
        return compare(args, ms, model, precision)
    # --plan alone searches chunk sizes with the partition; a given size (or the file's,
    # without --plan) is the only candidate
    fixed = args.chunk_tokens or (None if args.plan else ms.spec.chunk_tokens)
    choice = choose_chunk(ms, model, prompt_tokens=args.prompt, precision=precision,
                          detail=args.detail, plan=args.plan, seed=args.seed,
                          candidates=None if fixed is None else (min(fixed, args.prompt),))
    ms, result = choice.system, choice.prefill
    rng = generator(None if args.seed is None else args.seed + 1)  # decode's own stream
    if args.sequences > 1:
        return _sequences(args, ms, model, precision, choice, rng)
    dec = simulate_decode(ms, model, prompt_tokens=args.prompt, gen=args.gen,
                          precision=precision, detail=args.detail, rng=rng)
    summary = {"system": ms.spec.name, "model": model.name, "prompt_tokens": args.prompt,
               "chunk_tokens": choice.chunk_tokens,
               "chunks_tried": {str(k): v for k, v in choice.tried.items()},
               "ttft_s": result.ttft_s, "gen_tokens": args.gen, "tbt_s": dec.tbt_s,
               "e2e_s": result.ttft_s + sum(dec.step_s),
               "decode_compute_s": dec.compute_s, "decode_transfer_s": dec.transfer_s,
               "seed": args.seed, "busy_s": result.busy_s(),
               "link_bytes": result.transfer_bytes(),
               "stages": [f"{s.device}:{_layers(s)}" for s in result.stages]}
    if _emit(args, summary, result.timeline):
        return 0
    if len(choice.tried) > 1:
        print("chunk sizes tried (TTFT ms): " + ", ".join(
            f"{k}: {v * 1e3:.1f}" for k, v in choice.tried.items()))
    print(f"TTFT: {result.ttft_s * 1e3:.2f} ms")
    if args.gen > 1:
        print(f"decode: {args.gen - 1} steps, TBT {dec.tbt_s * 1e3:.2f} ms (compute "
              f"{dec.compute_s * 1e3:.1f} ms, links {dec.transfer_s * 1e3:.1f} ms in all); "
              f"end-to-end {summary['e2e_s'] * 1e3:.2f} ms")
    for res, busy in summary["busy_s"].items():
        moved = summary["link_bytes"].get(res)
        extra = f", {moved / 1e6:.2f} MB moved" if moved is not None else ""
        print(f"  {res:<24} busy {busy * 1e3:9.2f} ms "
              f"({100 * busy / result.ttft_s:5.1f}% of TTFT){extra}")
    return 0


def _emit(args: argparse.Namespace, summary: dict, timeline) -> bool:
    """Write ``-o`` (the summary plus every prefill op's place in time), then print the JSON
    summary (True: nothing more to print) or the text header (system, chunks, route)."""
    if args.out is not None:
        from sim.files import atomic_text

        rows = [{"kind": t.op.kind, "chunk": t.op.chunk, "resource": t.op.resource,
                 "bytes": t.op.bytes, "start_s": t.start_s, "end_s": t.end_s,
                 "free_s": t.free_s} for t in timeline]
        atomic_text(args.out, json.dumps({**summary, "timeline": rows}, indent=1) + "\n")
    if args.json:
        print(json.dumps(summary, indent=1))
        return True
    print(f"{summary['system']}: {summary['model']}, {summary['prompt_tokens']}-token prompt "
          f"in chunks of {summary['chunk_tokens']}")
    print("route: " + " -> ".join(summary["stages"]))
    return False


def _check_sequences(args: argparse.Namespace) -> None:
    """Refuse ``--sequences`` where it means nothing (one line, exit 2)."""
    from sim.errors import ConfigError

    if args.sequences == 1:
        return
    if args.compare:
        raise ConfigError("--sequences: not with --compare (it decodes its own points)")
    if args.gen < 2:
        raise ConfigError(f"--sequences: decodes {args.sequences} sequences after the "
                          f"prefill; give --gen N > 1 (tokens each generates)")
    if args.micro_batches is not None and args.micro_batches > args.sequences:
        raise ConfigError(f"--micro-batches: must be between 1 and the {args.sequences} "
                          f"sequences, got {args.micro_batches}")


def _sequences(args: argparse.Namespace, ms, model, precision, choice, rng) -> int:
    """``--sequences S`` (S > 1): the prefill, then S sequences decoded pipelined
    (`sim.edge_decode.simulate_sequences`); prints or ``--json``-s the summary."""
    from sim.edge_decode import simulate_sequences

    m = args.micro_batches or min(args.sequences, len(ms.spec.devices))
    run = simulate_sequences(ms, model, prompt_tokens=args.prompt, gen=args.gen,
                             sequences=args.sequences, micro_batches=m, precision=precision,
                             detail=args.detail, rng=rng)
    ttft, steps, b = choice.prefill.ttft_s, args.gen - 1, run.breakdown()
    summary = {"system": ms.spec.name, "model": model.name, "prompt_tokens": args.prompt,
               "chunk_tokens": choice.chunk_tokens,
               "chunks_tried": {str(k): v for k, v in choice.tried.items()},
               "ttft_s": ttft, "gen_tokens": args.gen, "sequences": args.sequences,
               "micro_batches": m, "decode_s": run.makespan_s,
               "tbt_s": run.makespan_s / steps, "e2e_s": ttft + run.makespan_s,
               "decode_compute_s": b["compute"], "decode_transfer_s": b["transfer"],
               "decode_waiting_s": b["waiting"], "seed": args.seed,
               "link_bytes": choice.prefill.transfer_bytes(),
               "decode_link_bytes": run.link_bytes(),
               "stages": [f"{s.device}:{_layers(s)}" for s in choice.prefill.stages]}
    if _emit(args, summary, choice.prefill.timeline):
        return 0
    print(f"TTFT: {ttft * 1e3:.2f} ms")
    print(f"decode: {args.sequences} sequences x {steps} steps in {m} micro-batches: "
          f"{run.makespan_s * 1e3:.1f} ms, {args.sequences * steps / run.makespan_s:.1f} "
          f"tokens/s; the last group's compute {b['compute'] * 1e3:.1f} ms, links "
          f"{b['transfer'] * 1e3:.1f} ms, waiting {b['waiting'] * 1e3:.1f} ms")
    print(f"end-to-end: {summary['e2e_s'] * 1e3:.2f} ms")
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
