"""The ``pdsim`` command line.

Bad input (a flag, a file, a preset) ends with one line on stderr and exit code 2, before any
output file is opened; bugs keep their traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from mappers.ir import Precision
from mappers.models import load_model, model_names, with_routing

from sim import __version__
from sim.engine import Workload, simulate
from sim.errors import PdsimError
from sim.argtypes import dtype as _dtype, int_at_least as _int_at_least
from sim.files import check_output, read_text
from sim.limits import MAX_DECODE_STEPS, MAX_WORD_BYTES, check_folds, check_gemm_size
from sim.presets import load_hardware, preset_names, referenced_texts
from sim.cli.report import describe, describe_text, gemm_text, ops_text, summary_text
from sim.trace import read_trace, to_json, write_trace


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too)
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pdsim", description="Simulate LLM prefill and decode on "
                     "heterogeneous hardware.")
    parser.add_argument("--version", action="version", version=f"pdsim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="simulate a workload and write an HDF5 trace",
                         description="Simulate prefill and every decode step of a batch of "
                         "requests; print a summary and write an HDF5 trace.")
    run.add_argument("--hw", default="h100", help="hardware preset or YAML file "
                     "(default: h100; see 'pdsim list')")
    run.add_argument("--model", default="llama2-7b", help="shipped model or path to a "
                     "Hugging Face config.json (default: llama2-7b)")
    run.add_argument("--batch", type=_int_at_least(1), default=1, help="sequences (default 1)")
    run.add_argument("--prompt", type=_int_at_least(1), default=2048,
                     help="prompt tokens per sequence (default 2048)")
    run.add_argument("--gen", type=_int_at_least(1, MAX_DECODE_STEPS + 1), default=128,
                     help="generated tokens per sequence, the first from prefill (default 128)")
    run.add_argument("--dtype", type=_dtype, default="fp16",
                     help="weights, activations and KV cache (default fp16)")
    run.add_argument("--weight-dtype", type=_dtype, help="override --dtype for weights")
    run.add_argument("--kv-dtype", type=_dtype, help="override --dtype for the KV cache")
    run.add_argument("--quant", metavar="SCHEME", help="quantization scheme (fp16, w8a8, w4a16, "
                     "w4a8-qserve, w4fp8-fireq, fp8) or a scheme YAML file: sets every operand's "
                     "format and charges its dequantization work (replaces --dtype, "
                     "--weight-dtype, --kv-dtype)")
    run.add_argument("--tp", type=_int_at_least(1), help="tensor-parallel chips "
                     "(default: the preset's tensor_parallel; tp x pp <= the preset's "
                     "num_chips)")
    run.add_argument("--pp", type=_int_at_least(1), help="pipeline stages, each a contiguous "
                     "run of layers on its own chips (default: the preset's pipeline_parallel)")
    run.add_argument("--runtime", metavar="NAME", help="software stack: a runtime preset "
                     "(eager, cuda-graph, fused) or YAML file; overrides the hardware's "
                     "runtime (docs/chip-model.md)")
    run.add_argument("--mapping", metavar="NAME", help="mapping policy: which unit runs each "
                     "op kind per phase (fixed, phase-aware, attention-on-pim, all-pim, all-cim, "
                     "auto; default: the system's `mapping`, else its op lists)")
    run.add_argument("--explain", action="store_true", help="print where each op kind runs "
                     "per phase (and, with --mapping auto, why)")
    run.add_argument("--detail", choices=("tile", "roofline"), default="tile",
                     help="unit models: tile-level systolic-array and vector models "
                     "(default) or the roofline baseline")
    run.add_argument("--decode-sample", type=_int_at_least(2), metavar="N",
                     help="simulate N evenly spaced decode steps and interpolate the rest "
                     "(default: every step)")
    run.add_argument("--seed", type=_int_at_least(0), default=0, help="0 to 2**63 - 1, "
                     "recorded in the trace for provenance only: every model of 'pdsim run' "
                     "is deterministic, so the seed changes no number (except the accepted "
                     "counts that --draft --accept samples) (default 0)")
    run.add_argument("-o", "--out", help="trace path (default results/runs/"
                     "HW_MODEL_bB_pP_gG_DETAIL_W-A-KV_HASH.h5: HASH covers every input that "
                     "can change the result)")
    run.add_argument("--no-trace", action="store_true", help="do not write a trace")
    run.add_argument("--no-capacity-check", action="store_true",
                     help="simulate even if weights and KV cache exceed a chip's memory")
    run.add_argument("--check-dram", action="store_true",
                     help="check every compute-in-DRAM command stream the simulated steps "
                     "generate (docs/cid.md); exit 1 on a violation (a simulator bug)")
    run.add_argument("--json", action="store_true", help="print the summary as JSON")
    run.add_argument("--routing", metavar="JSON", help="measured MoE routing: a file "
                     "{\"expert_counts\": [...]} of tokens per expert (default: uniform)")
    from sim.cli.speculative import add_arguments as _spec_arguments
    _spec_arguments(run)
    from sim.cli.dllm import add_arguments as _dllm_arguments
    _dllm_arguments(run)

    gemm = sub.add_parser("gemm", help="one GEMM on one systolic array, or mapped onto a chip",
                          description="C[M,N] = A[M,K] @ B[K,N]. With --rows/--cols: one array, "
                          "fold by fold (SCALE-Sim's cycle convention). With --hw: mapped onto "
                          "every array of a chip by the mapping search.")
    gemm.add_argument("--m", type=_int_at_least(1), required=True)
    gemm.add_argument("--n", type=_int_at_least(1), required=True)
    gemm.add_argument("--k", type=_int_at_least(1), required=True)
    gemm.add_argument("--rows", type=_int_at_least(1), help="array rows (one-array mode)")
    gemm.add_argument("--cols", type=_int_at_least(1), help="array columns (one-array mode)")
    gemm.add_argument("--dataflow", choices=("os", "ws", "is"), default="os")
    gemm.add_argument("--sram-kb", type=_int_at_least(1), metavar="KB",
                      help="SRAM per operand, double-buffered (default: unlimited)")
    gemm.add_argument("--bw", type=float, metavar="BYTES_PER_CYCLE",
                      help="bandwidth of the level behind the SRAMs (default: unlimited)")
    gemm.add_argument("--word-bytes", type=_int_at_least(1, MAX_WORD_BYTES), default=2,
                      help=f"bytes per operand word, 1 to {MAX_WORD_BYTES} (default 2)")
    gemm.add_argument("--hw", help="map onto this chip instead (preset or YAML)")
    gemm.add_argument("--dtype", type=_dtype, default="fp16", help="with --hw (default fp16)")
    gemm.add_argument("--json", action="store_true")

    rep = sub.add_parser("reproduce", help="regenerate a study under results/",
                         description="Regenerate a reproduction of published results: its "
                         "README table, plot and JSON data.")
    rep.add_argument("study", choices=sorted(_studies()), help="which study")
    rep.add_argument("-o", "--out", help="output folder (default results/<study folder>)")

    lst = sub.add_parser("list", help="list hardware presets and models")
    lst.add_argument("--json", action="store_true")

    desc = sub.add_parser("describe", help="derived figures of a hardware preset or file")
    desc.add_argument("hw", help="preset name or YAML file")
    desc.add_argument("--json", action="store_true")

    show = sub.add_parser("show", help="summarise an HDF5 trace")
    show.add_argument("trace", help="trace file written by 'pdsim run'")
    show.add_argument("--ops", type=_int_at_least(0), metavar="STEP",
                      help="also list the ops of step STEP (0 is the prefill)")
    show.add_argument("--plot", metavar="PNG", help="also draw step times and the time by op "
                      "kind to this PNG file")
    show.add_argument("--perfetto", metavar="JSON", help="also write the op timeline as "
                      "Chrome trace-event JSON (ui.perfetto.dev, chrome://tracing): one track "
                      "per unit per chip")
    show.add_argument("--json", action="store_true")
    for module in _command_modules():
        _HANDLERS.update(module.add_commands(sub))
    return parser


#: Handlers of the commands that the wings' `cli` modules add, filled by `build_parser`.
_HANDLERS: dict = {}


#: Command modules that are not a unit's: tools built on the simulator.
TOOL_COMMANDS = ("sim.cli.sweep", "sim.cli.serve", "sim.cli.train", "sim.cli.edge",
                 "sim.cli.hat")


def _command_modules():
    """The CLI plug-in of every unit wing, ``sim/units/<unit>/cli.py``, in name order. Each
    defines ``add_commands(sub) -> {command: handler(args, argv) -> int}`` (adding its
    subparsers to ``sub``; heavy imports belong inside the handlers) and may define ``STUDIES``
    like the one below, merged into ``pdsim reproduce``."""
    import importlib
    import importlib.util
    import pkgutil

    import sim.units

    wings = sorted(m.name for m in pkgutil.iter_modules(sim.units.__path__) if m.ispkg)
    names = [f"sim.units.{wing}.cli" for wing in wings
             if importlib.util.find_spec(f"sim.units.{wing}.cli") is not None]
    return [importlib.import_module(name) for name in [*names, *TOOL_COMMANDS]]


class _Terminated(BaseException):
    """SIGTERM, raised like KeyboardInterrupt so that writers clean up on the way out."""


def _on_sigterm(signum, frame) -> None:
    raise _Terminated


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if _main_thread() else None
    try:
        args = build_parser().parse_args(argv)
        code = _dispatch(args, argv)
        sys.stdout.flush()  # inside the try: a reader that left shows up here, not at exit
        return code
    except BrokenPipeError:  # `pdsim show ... | head`: the reader left; not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush stays quiet
        return 0
    except (KeyboardInterrupt, _Terminated) as exc:
        # Ctrl-C or `kill`: temporary files are gone (sim.files); the shell's codes 128 + N.
        print("pdsim: interrupted", file=sys.stderr)
        return 130 if isinstance(exc, KeyboardInterrupt) else 143
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main_thread() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


def _dispatch(args: argparse.Namespace, argv: list[str]) -> int:
    try:
        handlers = {"run": _run, "gemm": _gemm, "reproduce": _reproduce, "list": _list,
                    "describe": _describe, "show": _show, **_HANDLERS}
        return handlers[args.command](args, argv)
    except PdsimError as exc:
        print(f"pdsim {args.command}: error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, argv: list[str]) -> int:
    if args.out is not None:
        check_output(args.out, "-o")  # before loading anything: a bad path fails at once
    hw = load_hardware(args.hw)
    model = load_model(args.model)
    routing = None
    if args.routing:
        routing = read_text(args.routing, "--routing")
        model = replace(model, config=with_routing(model.config, routing))
    system = hw.system
    if args.tp is not None or args.pp is not None:
        system = _parallel(system, args.tp, args.pp)
    if args.runtime is not None:
        from sim.runtime import load_runtime
        load_runtime(args.runtime)  # a bad name stops here, naming --runtime
        system = dataclasses.replace(system, runtime=args.runtime)
    if args.quant is not None:
        from mappers.schemes import load_scheme
        if args.weight_dtype or args.kv_dtype:
            raise PdsimError("--quant: sets every operand's format; drop --weight-dtype and "
                             "--kv-dtype")
        precision = load_scheme(args.quant)
    else:
        precision = Precision(weight=args.weight_dtype or args.dtype, activation=args.dtype,
                              kv=args.kv_dtype or args.dtype)
    workload = Workload(batch=args.batch, prompt_tokens=args.prompt, gen_tokens=args.gen,
                        precision=precision)
    from sim.cli.speculative import check_flags, run_speculative
    check_flags(args)  # speculative and diffusion flags, before anything is simulated
    from sim.cli import dllm as _dllm
    _dllm.check_flags(args)
    if args.mapping is not None:
        from mappers.mapping import check_mapping
        check_mapping(args.mapping)  # before anything is simulated or written
    mapping = args.mapping if args.mapping is not None else system.mapping
    choices = ()
    if mapping is not None:
        from sim.mapping import resolve
        system, choices = resolve(system, model.config, workload, name=mapping,
                                  detail=args.detail)
    if args.explain:
        from sim.mapping import explain
        print(explain(system, choices), file=sys.stderr if args.json else sys.stdout)

    def run_meta() -> dict:
        meta = {
            "command_line": shlex.join(["pdsim", *argv]),
            "hardware_source": hw.source,
            "hardware_yaml": hw.text,
            "referenced_yaml": json.dumps(referenced_texts(system)),
            "tensor_parallel": system.tensor_parallel,
            "pipeline_parallel": system.pipeline_parallel,
            "model_source": model.source,
            "model_config": model.text,
            "workload": json.dumps({"batch": args.batch, "prompt_tokens": args.prompt,
                                    "gen_tokens": args.gen, "weight_dtype": precision.weight,
                                    "activation_dtype": precision.activation,
                                    "kv_dtype": precision.kv}),
            "detail": args.detail,
            "decode_sample": args.decode_sample or 0,
            "seed": args.seed,
        }
        if routing is not None:  # only then, so other runs keep their trace names
            meta["routing"] = routing
        if mapping is not None:  # likewise
            meta["mapping"] = mapping
        return meta

    if args.dllm is not None or args.draft is not None:
        # Draft-and-verify (docs/speculative.md) and masked diffusion (docs/dllm.md): their
        # own summaries, and an iteration trace only where -o names one.
        trace = (args.out, run_meta()) if args.out is not None else None
        if args.dllm is not None:
            return _dllm.run_dllm(args, system, model.config, workload, trace)
        return run_speculative(args, system, model.config, workload, trace)
    out = meta = None
    if not args.no_trace:  # named and checked before simulating
        meta = run_meta()
        out = check_output(default_trace_path(args, model.config.name, meta)
                           if args.out is None else args.out, "-o")
    audit = None
    if args.check_dram:
        from sim.units.cid.audit import StreamAudit
        audit = StreamAudit()
    result = simulate(system, model.config, workload, detail=args.detail,
                      decode_sample=args.decode_sample,
                      check_capacity=not args.no_capacity_check, progress=_progress(),
                      dram_audit=audit)
    if audit is not None and audit.violations:  # the simulator's bug: no trace, exit 1
        print(f"pdsim run: {audit.headline()}; no trace written", file=sys.stderr)
        for line in audit.lines():
            print(line, file=sys.stderr)
        if args.json:
            print(to_json({"summary": result.summary, "trace": None,
                           "dram_check": audit.summary()}))
        return 1
    if out is not None:
        write_trace(out, result, meta)
    if args.json:
        print(to_json({"summary": result.summary, "trace": str(out) if out else None}
                      | ({"dram_check": audit.summary()} if audit is not None else {})))
    else:
        pp = system.pipeline_parallel
        title = (f"{model.config.name} on {system.name} (tp {system.tensor_parallel}, "
                 + (f"pp {pp}, " if pp > 1 else "") + f"{args.detail}"
                 + (f", runtime {system.runtime}" if system.runtime else "") + "), batch "
                 f"{args.batch}, prompt {args.prompt}, generate {args.gen}, "
                 f"{precision.weight}/{precision.activation}/{precision.kv} (w/act/kv)")
        print(summary_text(result.summary, title))
        if result.summary["exceeds_max_positions"]:
            print(f"  note: the context exceeds {model.config.name}'s maximum of "
                  f"{model.config.max_positions} positions; costs are extrapolated")
        if out:
            print(f"trace: {out}")
        if audit is not None:
            print(audit.headline() + ("" if system.chip.cid else
                                      f" ({system.name} has no CiD unit)"))
    return 0


def _parallel(system, tp: int | None, pp: int | None):
    """``system`` with ``--tp``/``--pp`` applied. ``num_chips`` is the hardware's chip count
    (docs/hardware-yaml.md): the flags choose how the run uses those chips and never add any,
    so ``tp x pp`` above it is refused (a bigger system is a hardware file with a larger
    ``num_chips``)."""
    from sim.schema import build, to_dict

    tp_, pp_ = tp or system.tensor_parallel, pp or system.pipeline_parallel
    n, name = system.num_chips, system.name
    if tp_ * pp_ > n:
        if pp is None:
            raise PdsimError(f"--tp: at most {n // pp_} on {name} (num_chips {n} / "
                             f"pipeline_parallel {pp_}), got {tp}")
        if tp is None:
            raise PdsimError(f"--pp: at most {n // tp_} on {name} (num_chips {n} / "
                             f"tensor_parallel {tp_}), got {pp}")
        raise PdsimError(f"--tp x --pp: at most num_chips {n} on {name}, got {tp} x {pp}")
    flag = "--tp" if pp is None else "--pp" if tp is None else "--tp/--pp"
    return build(type(system), to_dict(system) | {"tensor_parallel": tp_,
                                                  "pipeline_parallel": pp_}, flag)


def default_trace_path(args: argparse.Namespace, model: str, meta: dict) -> Path:
    """``results/runs/HW_MODEL_bB_pP_gG_DETAIL_W-A-KV_HASH.h5``: the readable inputs, then
    6 hex digits of a hash of everything that can change the result (the hardware and model
    texts, parallelism, precision, detail, decode sampling), so runs that differ never share
    a default name and the same run always gets the same one."""
    import hashlib

    hw = Path(args.hw).stem if args.hw not in preset_names() else args.hw
    work = json.loads(meta["workload"])
    keyed = {k: v for k, v in meta.items()
             if k not in ("command_line", "hardware_source", "model_source", "seed")}
    digest = hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:6]
    dtypes = f"{work['weight_dtype']}-{work['activation_dtype']}-{work['kv_dtype']}"
    return Path(f"results/runs/{hw}_{model}_b{args.batch}_p{args.prompt}_g{args.gen}_"
                f"{args.detail}_{dtypes}_{digest}.h5")


def _progress():
    if not sys.stderr.isatty():
        return None

    def report(done: int, total: int) -> None:
        if total >= 256 and (done % 64 == 0 or done == total):
            end = "\n" if done == total else ""
            print(f"\rdecode steps {done}/{total}", end=end, file=sys.stderr, flush=True)
    return report


def _gemm(args: argparse.Namespace, argv: list[str]) -> int:
    from sim.units.systolic.array import array_folds, array_gemm  # numba: imported on use
    from sim.units.systolic.tile import map_gemm

    if args.hw is not None:
        if args.rows or args.cols or args.sram_kb or args.bw:
            raise PdsimError("--hw: maps onto a whole chip; drop --rows/--cols/--sram-kb/--bw")
        chip = load_hardware(args.hw).system.chip
        chip.core.systolic_array.macs_per_pe_per_cycle(args.dtype)
        check_gemm_size(args.m, args.n, args.k, 8)  # any dtype is at most 8 bytes
        g = map_gemm(chip, args.dtype, 1, args.m, args.n, args.k)
        out = {"hw": chip.name, "m": args.m, "n": args.n, "k": args.k, "dtype": args.dtype,
               "cycles": g.cycles, "compute_cycles": g.compute_cycles,
               "stall_cycles": g.cycles - g.compute_cycles, "time_s": g.cycles /
               chip.tensor_freq_hz, "utilization": g.utilization, "dram_bytes": g.dram_bytes,
               "l2_to_l1_bytes": g.l2_bytes, "l1_tile_mnk": list(g.tile),
               "sublane_split": g.split, "l2_loop_order": g.loop_order}
    else:
        if args.rows is None or args.cols is None:
            raise PdsimError("--rows and --cols: both required for one array (or give --hw)")
        check_gemm_size(args.m, args.n, args.k, args.word_bytes)
        check_folds(array_folds(args.rows, args.cols, args.dataflow, args.m, args.n, args.k),
                    "--m/--n/--k")
        r = array_gemm(rows=args.rows, cols=args.cols, dataflow=args.dataflow, m=args.m,
                       n=args.n, k=args.k, word_bytes=args.word_bytes,
                       sram_bytes=None if args.sram_kb is None else args.sram_kb * 1024,
                       bandwidth_bytes_per_cycle=args.bw)
        out = {"rows": args.rows, "cols": args.cols, "dataflow": args.dataflow, "m": args.m,
               "n": args.n, "k": args.k, "folds": r.folds, "cycles_per_fold": r.cycles_per_fold,
               "compute_cycles": r.compute_cycles, "stall_cycles": r.stall_cycles,
               "cycles": r.cycles, "utilization": r.utilization, "sram_reads": r.sram_reads,
               "sram_writes": r.sram_writes, "sram_words": r.sram_words,
               "next_level_words": r.next_level_words}
    if args.json:
        print(to_json(out))
    else:
        print(gemm_text(out))
    return 0


#: Studies: name -> (default folder, "module:function" writing the folder, returning paths).
#: The module also defines ``headline(data) -> str``: the headline numbers, as a short table,
#: of the ``.json`` among those paths (one per study), which ``pdsim reproduce`` prints after
#: the paths. The wings' ``STUDIES`` follow the same contract.
STUDIES = {"spad-chips": ("results/spad", "sim.studies.spad_report:write_spad_chips"),
           "odb-dllm": ("results/odb-dllm", "sim.studies.odb_dllm:write_odb_dllm"),
           "fireq": ("results/fireq", "sim.studies.fireq:write_fireq"),
           "halo": ("results/halo", "sim.studies.halo:write_halo"),
           "adrenaline": ("results/adrenaline", "sim.studies.adrenaline:write_adrenaline"),
           "jupiter": ("results/jupiter", "sim.studies.jupiter:write_jupiter"),
           "alchemist": ("results/alchemist", "sim.studies.alchemist:write_alchemist"),
           "hat": ("results/hat", "sim.studies.hat:write_hat")}


def _studies() -> dict[str, tuple[str, str]]:
    out = dict(STUDIES)
    for module in _command_modules():
        out.update(getattr(module, "STUDIES", {}))
    return out


def _reproduce(args: argparse.Namespace, argv: list[str]) -> int:
    import importlib
    import importlib.util
    folder, target = _studies()[args.study]
    module, func = target.split(":")
    out = check_output(folder if args.out is None else args.out, "-o", folder=True)
    study = importlib.import_module(module)
    paths = getattr(study, func)(out)
    for path in paths:
        print(f"wrote {path}")
    # Every study writes one JSON of its numbers; its module's `headline(data)` turns it into
    # a short table of the figures that matter.
    data = next(p for p in paths if Path(p).suffix == ".json")
    print(study.headline(json.loads(Path(data).read_text())))
    return 0


def _list(args: argparse.Namespace, argv: list[str]) -> int:
    presets = {n: load_hardware(n).system.description for n in preset_names()}
    models = {}
    for name in model_names():
        cfg = load_model(name).config
        models[name] = {"architecture": cfg.architecture,
                        "parameters": cfg.parameter_counts()["total"]}
    if args.json:
        print(to_json({"hardware": presets, "models": models}))
        return 0
    # columns as wide as the longest name plus two spaces, so a long name never runs on
    width = max(map(len, [*presets, *models])) + 2
    print("hardware presets:")
    for name, text in presets.items():
        print(f"  {name:<{width}}{text}")
    print("models:")
    for name, m in models.items():
        print(f"  {name:<{width}}{m['parameters'] / 1e9:7.2f} B  {m['architecture']}")
    return 0


def _describe(args: argparse.Namespace, argv: list[str]) -> int:
    system = load_hardware(args.hw).system
    print(to_json(describe(system)) if args.json else describe_text(system))
    return 0


def _show(args: argparse.Namespace, argv: list[str]) -> int:
    if args.perfetto:
        from sim.perfetto import check_perfetto_output
        check_perfetto_output(args.perfetto)  # before any work: a bad path writes nothing
    if args.plot is not None:
        from sim.cli.plots import plot_format
        check_output(args.plot, "--plot")
        plot_format(args.plot)
    from sim.trace_iter import is_iteration_trace
    if is_iteration_trace(args.trace):  # a --draft / --dllm run: steps, no op table
        from sim.cli.iterations import show_iterations
        return show_iterations(args)
    trace = read_trace(args.trace)
    if args.ops is not None and args.ops >= len(trace.steps):  # before any output
        raise PdsimError(f"--ops: step must be < {len(trace.steps)}, got {args.ops}")
    if args.perfetto:
        from sim.perfetto import write_perfetto
        events = write_perfetto(trace, args.perfetto)
        if not args.json:
            print(f"perfetto: {args.perfetto} ({events} events)")
    if args.json:
        steps = [{k: (v.decode() if isinstance(v, bytes) else v.item())
                  for k, v in zip(trace.steps.dtype.names, row)} for row in trace.steps]
        print(to_json({"meta": trace.meta, "summary": trace.summary, "steps": steps}))
        return 0
    print(summary_text(trace.summary, f"{args.trace}: {trace.meta['command_line']} "
                                      f"(pdsim {trace.meta['pdsim_version']})"))
    if args.ops is not None:
        simulated = [int(r["step"]) for r in trace.steps if r["simulated"]]
        if args.ops in simulated:
            print(ops_text(trace.ops, args.ops))
        else:  # interpolated under --decode-sample: it has no ops of its own to list
            print(f"step {args.ops} was interpolated (--decode-sample), so it has no op table; "
                  f"the simulated steps have one: {', '.join(map(str, simulated))}")
    if args.plot:
        from sim.cli.plots import plot_trace
        print(f"plot: {plot_trace(trace, args.plot, title=trace.meta['command_line'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
