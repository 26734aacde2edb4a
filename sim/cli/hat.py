"""``pdsim hat``: devices sharing a cloud through HAT's U-shaped split with speculative
decoding and prompt chunking, beside its baselines (docs/edge.md, "HAT")."""

from __future__ import annotations

import argparse
import json
import math


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def add_commands(sub) -> dict:
    """Add ``pdsim hat`` to the subparsers ``sub``; return its handler."""
    from sim.argtypes import dtype, int_at_least

    p = sub.add_parser(
        "hat", help="devices sharing a cloud via U-shaped splits + speculative decoding (HAT)",
        description="Each device holds the embedding, the first k and last m layers, the LM "
        "head and an adapter (its draft model); the cloud's GPUs run the middle layers for "
        "every device, batching their prompt chunks and verify steps. Prints TTFT and TBT "
        "of HAT and its baselines, split along the critical path (docs/edge.md, \"HAT\").")
    p.add_argument("--model", default="llama2-7b", help="shipped model or config.json")
    p.add_argument("--device-model", metavar="MODEL",
                   help="the device-only baseline's model, whole on each device: shipped "
                   "model or config.json (default --model; e.g. tinyllama-1.1b)")
    p.add_argument("--device", default="jetson-orin-nx-16gb", metavar="HW",
                   help="device hardware preset or YAML (default jetson-orin-nx-16gb)")
    p.add_argument("--devices", type=int_at_least(1, 4096), default=30, metavar="N",
                   help="devices (default 30)")
    p.add_argument("--cloud", default="a6000", metavar="HW", help="cloud GPU (default a6000)")
    p.add_argument("--cloud-gpus", type=int_at_least(1, 4096), default=8, metavar="N",
                   help="cloud GPUs, each a replica of the middle layers (default 8)")
    p.add_argument("--net", default="wan", help="network link preset or YAML (default wan)")
    p.add_argument("--k", type=int_at_least(1), default=2, help="first layers on the device")
    p.add_argument("--m", type=int_at_least(1), default=2, help="last layers on the device")
    p.add_argument("--plan", action="store_true", help="choose k and m (1..4 each) for "
                   "the least end-to-end latency of one request alone, under the device's "
                   "memory (replaces --k/--m)")
    p.add_argument("--adapter-layers", type=int_at_least(0), default=1, metavar="N",
                   help="decoder-layer blocks of the adapter (default 1)")
    p.add_argument("--gamma", type=int_at_least(1, 64), default=4,
                   help="draft tokens a round (default 4)")
    p.add_argument("--accept", type=_rate, default=0.8,
                   help="per-token acceptance rate in [0, 1] (default 0.8)")
    p.add_argument("--prompt", type=int_at_least(1), default=1024, help="prompt tokens")
    p.add_argument("--gen", type=int_at_least(1), default=128, help="tokens to generate")
    p.add_argument("--requests", type=int_at_least(1, 1000), default=1, metavar="N",
                   help="requests each device runs back to back (default 1)")
    p.add_argument("--stagger", type=float, default=0.0, metavar="S",
                   help="device i starts at i x S seconds (default 0)")
    p.add_argument("--mode", action="append", metavar="MODE",
                   help="hat, hat-nochunk, ushape, cloud, device (repeatable; default all)")
    p.add_argument("--dtype", type=dtype, default="fp16",
                   help="weights, activations and KV cache (default fp16)")
    p.add_argument("--seed", type=int_at_least(0), default=0,
                   help="seed of the accepted-draft counts (default 0)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    return {"hat": _hat}


def _hat(args: argparse.Namespace, argv: list[str]) -> int:
    from dataclasses import replace

    from mappers.hat import UShape
    from mappers.ir import Precision
    from mappers.models import load_model
    from sim.edge import load_net
    from sim.errors import ConfigError
    from sim.hat import MODES, HatSetup, Job, Runner, plan_split

    modes = args.mode or list(MODES)
    for m in modes:
        if m not in MODES:
            raise ConfigError(f"--mode: must be one of {', '.join(MODES)}, got {m!r}")
    if not 0 <= args.stagger < math.inf:  # also refuses NaN
        raise ConfigError(f"--stagger: must be a finite number >= 0 (seconds), got "
                          f"{args.stagger}")
    model = load_model(args.model).config
    small = None
    if args.device_model:
        try:
            small = load_model(args.device_model).config
        except ConfigError as exc:
            raise ConfigError(f"--device-model: {str(exc).removeprefix('--model: ')}") from None
    device, cloud = _hardware(args.device, "--device"), _hardware(args.cloud, "--cloud")
    try:
        link = load_net(args.net)
    except ConfigError as exc:
        raise ConfigError(f"--net: {str(exc).removeprefix('net: ')}") from None
    precision = Precision(weight=args.dtype, activation=args.dtype, kv=args.dtype)
    setup = HatSetup(model=model, devices=(device,) * args.devices, cloud=cloud,
                     cloud_gpus=args.cloud_gpus, link=link,
                     split=UShape(num_layers=model.num_layers, first=args.k, last=args.m,
                                  adapter=args.adapter_layers),
                     gamma=args.gamma, accept=args.accept, precision=precision,
                     seed=args.seed, device_model=small)
    if args.plan:
        split, _ = plan_split(setup, 0, args.prompt, args.gen)
        setup = replace(setup, split=split)
    jobs = [Job(d, d * args.stagger, args.prompt, args.gen)
            for d in range(args.devices) for _ in range(args.requests)]
    rows = {}
    for mode in modes:
        runner = Runner(setup, mode)
        outs = runner.run(jobs)
        n = len(outs)
        rows[mode] = {
            "ttft_s": sum(o.ttft_s for o in outs) / n,
            "tbt_s": sum(o.tbt_s for o in outs) / n,
            "ttft_split_s": {k: sum(o.ttft_split[k] for o in outs) / n
                             for k in outs[0].ttft_split},
            "tbt_split_s": {k: sum(o.tbt_split[k] for o in outs) / n
                            for k in outs[0].tbt_split} if args.gen > 1 else {},
            "chunks": sorted({o.chunk for o in outs}),
            "uplink_bytes": sum(o.uplink_bytes for o in outs) / n,
            "downlink_bytes": sum(o.downlink_bytes for o in outs) / n}
    summary = {"model": model.name, "device_model": (small or model).name,
               "device": device.name, "devices": args.devices,
               "cloud": cloud.name, "cloud_gpus": args.cloud_gpus, "net": setup.link.name,
               "k": setup.split.first, "m": setup.split.last,
               "adapter_layers": setup.split.adapter, "gamma": args.gamma,
               "accept": args.accept, "prompt": args.prompt, "gen": args.gen, "modes": rows}
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    print(f"{args.devices} x {device.name} + {args.cloud_gpus} x {cloud.name} over "
          f"{setup.link.name}: {model.name}"
          f"{f' (device-only: {small.name})' if small else ''}, k={setup.split.first} "
          f"m={setup.split.last} adapter={setup.split.adapter}, gamma={args.gamma}, "
          f"accept={args.accept}")
    print(f"{'mode':<12} {'TTFT ms':>9} {'TBT ms':>8}   TTFT split ms "
          f"(device/transfer/waiting/cloud)   TBT split ms")
    for mode, r in rows.items():
        split = "/".join(f"{v * 1e3:.1f}" for v in r["ttft_split_s"].values())
        tsplit = "/".join(f"{v * 1e3:.1f}" for v in r["tbt_split_s"].values())
        print(f"{mode:<12} {r['ttft_s'] * 1e3:9.1f} {r['tbt_s'] * 1e3:8.2f}   {split:<34} "
              f"{tsplit}")
    return 0


def _hardware(spec: str, flag: str):
    """A hardware preset or YAML's `System`; errors name ``flag``."""
    from sim.errors import ConfigError
    from sim.presets import load_hardware

    try:
        return load_hardware(spec).system
    except ConfigError as exc:
        raise ConfigError(f"{flag}: {str(exc).removeprefix('--hw: ')}") from None
