"""``pdsim run --dllm``: flags, checks and summary of diffusion-LM decoding (`sim.dllm`,
docs/dllm.md)."""

from __future__ import annotations

import argparse
import math

from sim.errors import ConfigError
from sim.limits import int_flag
from sim.text import table

_FLAGS = ("block", "steps_per_block", "dllm_cache", "tokens_per_iter", "tokens_file",
          "pred_len", "jump", "jump_width")


def _at_least_one(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number >= 1, got {text!r}") from None
    if not (value >= 1.0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a number >= 1, got {text}")
    return value


def add_arguments(run: argparse.ArgumentParser) -> None:
    """The diffusion-LM flags of ``pdsim run`` (--gen is the generation length L)."""
    g = run.add_argument_group("diffusion LMs (docs/dllm.md)")
    g.add_argument("--dllm", choices=("vanilla", "fast-dllm", "odb"),
                   help="masked-diffusion decoding of a bidirectional model (llada-8b)")
    g.add_argument("--block", type=int_flag(1, 1 << 20), help="block size b (default 32)")
    g.add_argument("--steps-per-block", type=int_flag(1, 1 << 20), metavar="N",
                   help="vanilla: iterations per block (default: b, one token each)")
    g.add_argument("--dllm-cache", choices=("dual", "prefix"),
                   help="fast-dllm/odb: KV cache refreshed once per block (default dual)")
    g.add_argument("--tokens-per-iter", type=_at_least_one, metavar="X",
                   help="fast-dllm/odb: mean tokens unmasked per iteration (default 2.77: "
                   "Fast-dLLM's measured rate on GSM8K-CoT, docs/dllm.md)")
    g.add_argument("--tokens-file", metavar="FILE",
                   help="fast-dllm/odb: per-iteration unmasked counts (integers >= 1), cycled")
    g.add_argument("--pred-len", type=int_flag(1, 1 << 20), metavar="N",
                   help="odb: predicted response length after the first block (default: --gen)")
    g.add_argument("--jump", type=_at_least_one, metavar="J",
                   help="odb: jump-share multiplier on tokens per iteration (default 1)")
    g.add_argument("--jump-width", type=int_flag(1, 64), metavar="N",
                   help="odb: block copies a jump-share pass carries (default 4, ODB-dLLM's)")


def check_flags(args: argparse.Namespace) -> None:
    if args.dllm is None:
        for name in _FLAGS:
            if getattr(args, name) is not None:
                raise ConfigError(f"--{name.replace('_', '-')}: only with --dllm MODE")
        return
    if args.draft is not None:
        raise ConfigError("--draft: not with --dllm (draft-and-verify is autoregressive)")
    if args.tokens_per_iter is not None and args.tokens_file is not None:
        raise ConfigError("--tokens-per-iter/--tokens-file: give one of them")
    if args.dllm == "vanilla":
        for name in ("dllm_cache", "tokens_per_iter", "tokens_file", "pred_len", "jump",
                     "jump_width"):
            if getattr(args, name) is not None:
                raise ConfigError(f"--{name.replace('_', '-')}: not with --dllm vanilla")
    elif args.steps_per_block is not None:
        raise ConfigError("--steps-per-block: only with --dllm vanilla")
    if args.dllm != "odb":
        for name in ("pred_len", "jump", "jump_width"):
            if getattr(args, name) is not None:
                raise ConfigError(f"--{name.replace('_', '-')}: only with --dllm odb")
    for flag, bad in (("--check-dram", args.check_dram), ("--routing", args.routing)):
        if bad:
            raise ConfigError(f"{flag}: not supported with --dllm yet")


def _counts(path: str) -> tuple[int, ...]:
    """Tokens unmasked per diffusion iteration, from ``--tokens-file``."""
    from sim.files import read_counts
    from sim.limits import MAX_DECODE_STEPS

    return read_counts(path, "--tokens-file", 1, MAX_DECODE_STEPS)


def run_dllm(args: argparse.Namespace, system, model, workload,
             trace: tuple[str, dict] | None = None) -> int:
    """Simulate and print a diffusion run; with ``trace`` (path, run metadata), also write
    its iteration trace (`sim.trace_iter`)."""
    from sim.dllm import DllmWorkload, simulate_dllm
    from sim.trace import to_json

    given = {k: v for k, v in (("block", args.block), ("steps_per_block", args.steps_per_block),
                               ("cache", args.dllm_cache),
                               ("tokens_per_iter", args.tokens_per_iter),
                               ("pred_len", args.pred_len), ("jump", args.jump),
                               ("candidates", args.jump_width))
             if v is not None}
    if args.tokens_file is not None:
        given["counts"] = _counts(args.tokens_file)
    w = DllmWorkload(mode=args.dllm, batch=workload.batch, prompt_tokens=workload.prompt_tokens,
                     gen_tokens=workload.gen_tokens, precision=workload.precision, **given)
    out = simulate_dllm(model, system, w, detail=args.detail,
                        check_capacity=not args.no_capacity_check)
    s = out["summary"]
    path = None
    if trace is not None:
        from sim.trace_iter import write_iteration_trace
        path = write_iteration_trace(trace[0], "dllm", s, out["steps"], trace[1], w.batch)
    if args.json:
        print(to_json({"summary": s, "trace": None if path is None else str(path),
                       "steps": out["steps"]}))
        return 0
    print(f"{model.name} on {system.name} ({args.detail}), --dllm {w.mode}, batch {w.batch}, "
          f"prompt {w.prompt_tokens}, generate {w.gen_tokens}, block {w.block}")
    rows = [("iterations (refresh + diffusion)", f"{s['iterations']} ({s['refresh_iterations']}"
             f" + {s['diffusion_iterations']})"),
            ("tokens per iteration", f"{s['tokens_per_iteration']:.3f}"),
            ("end-to-end", f"{s['e2e_s'] * 1e3:.3f} ms"),
            ("output tokens/s", f"{s['output_tokens_per_s']:.1f}")]
    for kind in ("refresh", "diffusion"):
        if s[f"{kind}_iterations"]:
            rows.append((f"{kind}: mean latency, intensity",
                         f"{s[f'{kind}_mean_latency_s'] * 1e3:.3f} ms, "
                         f"{s[f'{kind}_intensity_flop_per_dram_byte']:.1f} FLOP/B DRAM"))
    print(table(rows))
    print(f"trace: {path}" if path is not None else "  (no trace: -o PATH writes one)")
    return 0
