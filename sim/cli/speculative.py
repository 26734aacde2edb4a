"""``pdsim run --draft``: flags, checks and summary of draft-and-verify decoding
(`sim.speculative`, docs/speculative.md)."""

from __future__ import annotations

import argparse
import math

from sim.errors import ConfigError
from sim.limits import int_flag
from sim.text import table


def _gamma(text: str) -> int | None:
    if text == "auto":
        return None
    return int_flag(1, 1 << 20)(text)


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text}")
    return value


def add_arguments(run: argparse.ArgumentParser) -> None:
    """The speculative-decoding flags of ``pdsim run``."""
    g = run.add_argument_group("speculative decoding (docs/speculative.md)")
    g.add_argument("--draft", metavar="MODEL", help="draft model (shipped name or "
                   "config.json): G draft decode steps, then one target verify step of G + 1 "
                   "tokens per sequence")
    g.add_argument("--draft-hw", metavar="SYSTEM", help="hardware the draft runs on "
                   "(preset or YAML; default: --hw)")
    g.add_argument("--gamma", type=_gamma, default=argparse.SUPPRESS, metavar="G|auto",
                   help="draft tokens per round, or 'auto' for the best for --accept "
                   "(default 4)")
    g.add_argument("--accept", type=_rate, metavar="A", help="i.i.d. per-token acceptance "
                   "rate in [0, 1], sampled per verify step with --seed")
    g.add_argument("--accept-file", metavar="FILE", help="per-verify-step accepted draft "
                   "counts (integers 0..G), cycled")


def check_flags(args: argparse.Namespace) -> None:
    """Speculative flags only with ``--draft``, and one acceptance model with it."""
    gamma_given = hasattr(args, "gamma")
    if not gamma_given:
        args.gamma = 4
    if args.draft is None:
        for flag, given in (("--draft-hw", args.draft_hw is not None),
                            ("--gamma", gamma_given), ("--accept", args.accept is not None),
                            ("--accept-file", args.accept_file is not None)):
            if given:
                raise ConfigError(f"{flag}: only with --draft MODEL")
        return
    if (args.accept is None) == (args.accept_file is None):
        raise ConfigError("--accept/--accept-file: --draft needs exactly one of them")
    if args.gamma is None and args.accept is None:
        raise ConfigError("--gamma: 'auto' needs --accept (a rate), not --accept-file")
    for flag, bad in (("--check-dram", args.check_dram), ("--routing", args.routing)):
        if bad:
            raise ConfigError(f"{flag}: not supported with --draft yet")


def run_speculative(args: argparse.Namespace, system, target, workload,
                    trace: tuple[str, dict] | None = None) -> int:
    """Simulate and print a draft-and-verify run; with ``trace`` (path, run metadata), also
    write its iteration trace (`sim.trace_iter`)."""
    from mappers.models import load_model
    from sim.presets import load_hardware
    from sim.speculative import read_accept_file, simulate_speculative
    from sim.trace import to_json

    draft = load_model(args.draft).config
    draft_system = system if args.draft_hw is None else load_hardware(args.draft_hw).system
    counts = None
    if args.accept_file is not None:
        counts = read_accept_file(args.accept_file, args.gamma)
    result = simulate_speculative(target, system, draft, draft_system, workload,
                                  gamma=args.gamma, accept=args.accept, counts=counts,
                                  seed=args.seed, detail=args.detail,
                                  samples=args.decode_sample or 9,
                                  check_capacity=not args.no_capacity_check)
    s = result.summary
    path = None
    if trace is not None:
        from sim.trace_iter import write_iteration_trace
        meta = trace[1] | {"draft_model": draft.name, "draft_system": draft_system.name}
        path = write_iteration_trace(trace[0], "draft", s, result.steps, meta, workload.batch)
    if args.json:
        print(to_json({"summary": s, "trace": None if path is None else str(path),
                       "steps": result.steps}))
        return 0
    print(f"{target.name} on {system.name}, draft {draft.name} on {draft_system.name} "
          f"({args.detail}), batch {workload.batch}, prompt {workload.prompt_tokens}, "
          f"generate {workload.gen_tokens}, gamma {s['gamma']}"
          + (" (auto)" if args.gamma is None else ""))
    expected = s["expected_tokens_per_verify_step"]
    rows = [
        ("verify steps", f"{s['rounds']}"),
        ("tokens per verify step", f"{s['tokens_per_verify_step']:.3f}"
         + ("" if math.isnan(expected) else f" (closed form {expected:.3f})")),
        ("TTFT (target + draft prefill)", f"{s['ttft_s'] * 1e3:.3f} ms"),
        ("draft / verify time", f"{s['draft_time_s'] * 1e3:.3f} / "
         f"{s['verify_time_s'] * 1e3:.3f} ms"),
        ("end-to-end", f"{s['e2e_s'] * 1e3:.3f} ms (plain decode {s['plain_e2e_s'] * 1e3:.3f}"
         " ms)"),
        ("speed-up over plain decode", f"decode {s['decode_speedup']:.3f}x, end-to-end "
         f"{s['e2e_speedup']:.3f}x"),
        ("decode intensity", f"{s['decode_intensity_flop_per_dram_byte']:.2f} FLOP/B DRAM"),
    ]
    if "best_gamma" in s:
        rows.append(("best gamma (expected speed-up)", f"{s['best_gamma']} ("
                     f"{s['expected_speedup_gamma_' + str(s['best_gamma'])]:.3f}x)"))
    print(table(rows))
    print(f"trace: {path}" if path is not None else "  (no trace: -o PATH writes one)")
    return 0
