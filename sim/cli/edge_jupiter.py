"""``pdsim edge --compare``: Jupiter and its baselines (one device, naive layer pipeline,
tensor parallel over the links) on a multi-system file, one request each (docs/edge.md,
"Jupiter")."""

from __future__ import annotations

import argparse
import json


def add_flags(p: argparse.ArgumentParser) -> None:
    """The ``--compare`` flag and the outline decode's flags, on ``pdsim edge``'s parser."""
    from sim.argtypes import int_at_least

    g = p.add_argument_group("Jupiter and baselines (--compare)")
    g.add_argument("--compare", action="store_true", help="run one request by each method "
                   "(one-device, naive-pipeline, tensor-parallel, jupiter) and print TTFT, "
                   "end-to-end and its compute/transfer/waiting split; the baselines generate "
                   "points x point-tokens tokens")
    g.add_argument("--points", type=int_at_least(1), default=8, metavar="P",
                   help="outline points decoded together (default 8)")
    g.add_argument("--outline-tokens", type=int_at_least(1), default=64, metavar="N",
                   help="tokens of the outline, decoded first (default 64)")
    g.add_argument("--point-tokens", type=int_at_least(1), default=64, metavar="N",
                   help="tokens of each point's expansion (default 64)")
    g.add_argument("--micro-batches", type=int_at_least(1), metavar="M",
                   help="groups the points (or --sequences) are pipelined in (default "
                   "min(points, devices))")
    g.add_argument("--gamma", type=int_at_least(0), default=4, metavar="G",
                   help="draft heads per round, 0 for no speculation (default 4)")
    g.add_argument("--accept", type=float, default=0.6, metavar="A",
                   help="per-token acceptance rate in [0, 1] (default 0.6)")


def check_flags(args: argparse.Namespace, argv: list[str]) -> None:
    """Refuse outline flags given without ``--compare`` (one line, exit 2)."""
    from sim.errors import ConfigError

    flags = ("--points", "--outline-tokens", "--point-tokens", "--micro-batches", "--gamma",
             "--accept")
    if args.sequences > 1:  # --micro-batches also splits --sequences' sequences
        flags = tuple(f for f in flags if f != "--micro-batches")
    used = [f for f in flags if any(a.split("=")[0] == f for a in argv)]
    if used and not args.compare:
        raise ConfigError(f"{used[0]}: only with --compare" + (
            " or --sequences" if used[0] == "--micro-batches" else ""))
    if args.compare and (args.plan or args.chunk_tokens or args.gen != 1 or args.out):
        raise ConfigError("--compare: chooses its own splits, chunks and lengths; drop --plan, "
                          "--chunk-tokens, --gen and -o")


def compare(args: argparse.Namespace, ms, model, precision) -> int:
    """Print (or ``--json``) every method's request on ``ms``."""
    from sim.edge import checked_route
    from sim.edge_jupiter import METHODS, Outline, run_methods

    checked_route(ms, model)  # the file's split and links must be sound, even if re-split
    plan = Outline(points=args.points, outline_tokens=args.outline_tokens,
                   point_tokens=args.point_tokens, micro_batches=args.micro_batches,
                   gamma=args.gamma, accept=args.accept, seed=args.seed or 0)
    res = run_methods(ms, model, plan, prompt_tokens=args.prompt, precision=precision,
                      detail=args.detail)
    if args.json:
        print(json.dumps({"system": ms.spec.name, "model": model.name,
                          "prompt_tokens": args.prompt, "answer_tokens": plan.answer_tokens,
                          "methods": {k: {"fits": r.fits, "ttft_s": r.ttft_s,
                                          "e2e_s": r.e2e_s, "breakdown": r.breakdown,
                                          "need_gb": r.need_gb, "have_gb": r.have_gb,
                                          "detail": r.detail} for k, r in res.items()}},
                         indent=1))
        return 0
    print(f"{ms.spec.name}: {model.name}, {args.prompt}-token prompt, answer of "
          f"{plan.points} points x {plan.point_tokens} tokens (Jupiter: + a "
          f"{plan.outline_tokens}-token outline)")
    print(f"  {'method':<16} {'TTFT s':>8} {'e2e s':>9} {'compute':>9} {'transfer':>9} "
          f"{'waiting':>9}")
    for k in METHODS:
        r = res[k]
        if not r.fits:
            print(f"  {k:<16} does not fit: needs {r.need_gb:.2f} GB, has {r.have_gb:.2f} GB"
                  if r.need_gb else f"  {k:<16} does not fit: {r.detail.get('why', '')}")
            continue
        b = r.breakdown
        print(f"  {k:<16} {r.ttft_s:8.2f} {r.e2e_s:9.2f} {b['compute']:9.2f} "
              f"{b['transfer']:9.2f} {b['waiting']:9.2f}")
    return 0
