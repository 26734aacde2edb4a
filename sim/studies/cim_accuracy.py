"""Accuracy of the analog CiM path (`sim.units.cim.numerics`) on llama2-7b layer shapes: SQNR
against ADC resolution and against device noise, on the `halo-cim` crossbar.

Layers (llama2-7b, hidden 4096, MLP 11008): ``q_proj`` (K = 4096 -> N = 4096) and
``down_proj`` (K = 11008 -> N = 4096). Values are synthetic (no checkpoint is downloaded):

* weights: Student-t with 4 degrees of freedom, scaled to standard deviation 0.02 (the
  initialisation scale of Llama; the t tails stand in for the heavier tails of trained weights);
* ``q_proj`` input (a normalised hidden state): N(0, 1) per element, with ``OUTLIER_CHANNELS``
  hidden dimensions scaled by ``OUTLIER_SCALE`` for every token, the pattern LLM.int8()
  (Dettmers et al., 2022) reports: a few fixed feature dimensions with far larger values. The
  count and scale are our choice;
* ``down_proj`` input (the SwiGLU product ``silu(g) * u``): ``silu(g) * u`` with g, u
  N(0, 1), and the same share of outlier channels (scaled the same way).

Only ``TOKENS`` tokens and the first ``COLUMNS`` of the 4096 output columns are computed (the
whole K is kept, so every column sees the full row-tile accumulation); the weights of the
other columns would be independent draws of the same distribution. Weights are quantised to
int8 per output channel and activations to int8 per token (symmetric). Every point uses its own
seeded generator, so the study is deterministic.

`cim_accuracy` computes the numbers and touches no file; `write_cim_accuracy` regenerates
``results/cim/`` (``pdsim reproduce cim-accuracy``).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np

from sim.units.cim.numerics import error_metrics, mvm, program, quantize, with_adc
from sim.units.cim.crossbar import Crossbar, load_cim
from sim.studies import text_table, write_study

COMMAND = "pdsim reproduce cim-accuracy"
PRESET = "halo-cim"
SEED = 2026
TOKENS = 16
COLUMNS = 256
LAYERS = {"q_proj": (4096, 4096), "down_proj": (11008, 4096)}  # name: (K, N) in llama2-7b
OUTLIER_SHARE = 6 / 4096
OUTLIER_SCALE = 20.0
WEIGHT_STD = 0.02
ADC_BITS = tuple(range(4, 13))
FULL_RANGE = 1.0  # the comparison ADC: full scale at the largest possible column sum
NOISE_LEVELS = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1)


def layer_data(name: str, k: int, rng: np.random.Generator, tokens: int = TOKENS,
               columns: int = COLUMNS) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Synthetic (activations ``tokens x k``, weights ``k x columns``, outlier channels) of
    layer ``name``, as the module docstring describes."""
    dof = 4
    w = rng.standard_t(dof, size=(k, columns)) * (WEIGHT_STD / math.sqrt(dof / (dof - 2)))
    if name == "down_proj":
        g, u = rng.standard_normal((tokens, k)), rng.standard_normal((tokens, k))
        x = g / (1 + np.exp(-g)) * u
    else:
        x = rng.standard_normal((tokens, k))
    outliers = sorted(rng.choice(k, size=max(1, round(OUTLIER_SHARE * k)), replace=False))
    x[:, outliers] *= OUTLIER_SCALE
    return x, w, [int(c) for c in outliers]


def _point(res_int: np.ndarray, ref_int: np.ndarray, scale: np.ndarray,
           y_float: np.ndarray) -> dict[str, Any]:
    analog = error_metrics(ref_int, res_int)
    total = error_metrics(y_float, res_int * scale)
    return {"sqnr_vs_integer_db": _finite(analog["sqnr_db"]),
            "exact": analog["sqnr_db"] == math.inf,
            "sqnr_vs_float_db": _finite(total["sqnr_db"]),
            "relative_error_vs_float": total["relative_error"]}


def _finite(x: float) -> float | None:
    return None if math.isinf(x) else x


def _layer(name: str, k: int, xb: Crossbar, tokens: int, columns: int, adc_bits: tuple,
           noise: tuple, layer_index: int) -> dict[str, Any]:
    x, w, outliers = layer_data(name, k, np.random.default_rng([SEED, layer_index]), tokens,
                                columns)
    wq, ws = quantize(w, xb.weight_bits, axis=0)
    xq, xs = quantize(x, xb.input_bits, axis=1)
    ref_int, scale = xq @ wq, xs * ws
    y_float = x @ w
    digital = error_metrics(y_float, ref_int * scale)
    exact_bits = xb.adc_bits_exact

    def rng(*key: int) -> np.random.Generator:
        return np.random.default_rng([SEED, layer_index, *key])

    offset_xb = dataclasses.replace(xb, encoding="offset")
    ideal = program(xb, wq, rng=rng(0), programming_noise=0.0)
    noisy = program(xb, wq, rng=rng(1), programming_noise=xb.programming_noise)
    offset = program(offset_xb, wq, rng=rng(7), programming_noise=0.0)
    adc_ideal, adc_noisy, adc_full, adc_offset = [], [], [], []
    for i, b in enumerate(adc_bits):
        read = with_adc(xb, b)
        y = mvm(ideal, xq, rng=rng(2, i), crossbar=read, read_noise=0.0)
        adc_ideal.append({"adc_bits": b, **_point(y, ref_int, scale, y_float)})
        y = mvm(noisy, xq, rng=rng(3, i), crossbar=read, read_noise=xb.read_noise)
        adc_noisy.append({"adc_bits": b, **_point(y, ref_int, scale, y_float)})
        y = mvm(ideal, xq, rng=rng(8, i), crossbar=with_adc(xb, b, FULL_RANGE),
                read_noise=0.0)
        adc_full.append({"adc_bits": b, **_point(y, ref_int, scale, y_float)})
        y = mvm(offset, xq, rng=rng(9, i), crossbar=with_adc(offset_xb, b, FULL_RANGE),
                read_noise=0.0)
        adc_offset.append({"adc_bits": b, **_point(y, ref_int, scale, y_float)})
    exact_read = with_adc(xb, exact_bits)
    prog_sweep, read_sweep = [], []
    for i, sigma in enumerate(noise):
        p = program(xb, wq, rng=rng(4, i), programming_noise=sigma)
        y = mvm(p, xq, rng=rng(5, i), crossbar=exact_read, read_noise=0.0)
        prog_sweep.append({"noise": sigma, **_point(y, ref_int, scale, y_float)})
        y = mvm(ideal, xq, rng=rng(6, i), crossbar=exact_read, read_noise=sigma)
        read_sweep.append({"noise": sigma, **_point(y, ref_int, scale, y_float)})
    analog_err = [(10 ** (-p["sqnr_vs_integer_db"] / 20) if p["sqnr_vs_integer_db"] is not None
                   else 0.0) for p in adc_ideal]
    return {
        "k": k, "n_full": LAYERS[name][1], "n_computed": columns, "tokens": tokens,
        "outlier_channels": outliers,
        "activation_absmax": float(np.max(np.abs(x))),
        "digital_int8_vs_float": {"sqnr_db": digital["sqnr_db"],
                                  "relative_error": digital["relative_error"]},
        "adc_sweep_ideal_devices": adc_ideal,
        "adc_sweep_preset_noise": adc_noisy,
        "adc_sweep_full_range": adc_full,
        "adc_sweep_offset_encoding": adc_offset,
        "programming_noise_sweep": prog_sweep,
        "read_noise_sweep": read_sweep,
        "error_monotone_in_adc_bits": all(a >= b for a, b in zip(analog_err, analog_err[1:])),
    }


def cim_accuracy(*, tokens: int = TOKENS, columns: int = COLUMNS,
                 adc_bits: tuple[int, ...] = ADC_BITS,
                 noise: tuple[float, ...] = NOISE_LEVELS,
                 layers: tuple[str, ...] = tuple(LAYERS)) -> dict[str, Any]:
    """Every number of the study (JSON-serialisable; an exact result has SQNR None and
    ``exact`` true)."""
    xb = load_cim(PRESET).unit.crossbar
    return {
        "study": "cim-accuracy",
        "command": COMMAND,
        "preset": PRESET,
        "crossbar": dataclasses.asdict(xb),
        "adc_bits_exact": xb.adc_bits_exact,
        "adc_bits_exact_full_range": with_adc(xb, xb.adc_bits, FULL_RANGE).adc_bits_exact,
        "adc_bits_exact_offset": with_adc(dataclasses.replace(xb, encoding="offset"),
                                          xb.adc_bits, FULL_RANGE).adc_bits_exact,
        "full_range": FULL_RANGE,
        "seed": SEED,
        "data": {"weights": f"Student-t(4) scaled to std {WEIGHT_STD}",
                 "activations": "q_proj: N(0,1); down_proj: silu(N(0,1)) * N(0,1); "
                                f"{OUTLIER_SHARE * 4096:.0f} per 4096 channels x "
                                f"{OUTLIER_SCALE:g}",
                 "quantisation": "int8 symmetric: weights per output channel, activations "
                                 "per token"},
        "layers": {name: _layer(name, LAYERS[name][0], xb, tokens, columns, tuple(adc_bits),
                                tuple(noise), i)
                   for i, name in enumerate(layers)},
    }


def write_cim_accuracy(out_dir: Path, **kwargs: Any) -> list[Path]:
    """Regenerate the study in ``out_dir``: ``README.md``, ``cim_accuracy.png`` and
    ``cim_accuracy.json``, each through a temporary file and a rename. ``kwargs`` go to
    `cim_accuracy` (smaller sizes for tests)."""
    return write_study(Path(out_dir), "cim_accuracy", cim_accuracy(**kwargs), _plot, readme)


# ---------------------------------------------------------------- plot and README

def _cap(data: dict[str, Any]) -> float:
    """Where exact points are drawn: 10 dB above the highest finite SQNR, rounded up to 10."""
    finite = [p[key] for d in data["layers"].values() for sweep in d.values()
              if isinstance(sweep, list) and sweep and isinstance(sweep[0], dict)
              for p in sweep for key in ("sqnr_vs_integer_db", "sqnr_vs_float_db")
              if p[key] is not None]
    return 10.0 * math.ceil((max(finite) + 10) / 10)


def _plot(data: dict[str, Any], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = data["layers"]
    cap = _cap(data)

    def _y(p: dict[str, Any], key: str) -> float:
        return cap if p[key] is None else p[key]

    fig, axes = plt.subplots(len(layers), 2, figsize=(11, 4 * len(layers)), squeeze=False,
                             layout="constrained")
    try:
        for row, (name, d) in zip(axes, layers.items()):
            dig = d["digital_int8_vs_float"]["sqnr_db"]
            ax = row[0]
            bits = [p["adc_bits"] for p in d["adc_sweep_ideal_devices"]]
            for key, sweep, style, label in (
                    ("sqnr_vs_integer_db", "adc_sweep_ideal_devices", "o-",
                     "ideal devices, vs int8 product"),
                    ("sqnr_vs_float_db", "adc_sweep_ideal_devices", "s-",
                     "ideal devices, vs float"),
                    ("sqnr_vs_float_db", "adc_sweep_preset_noise", "s--",
                     "preset noise, vs float"),
                    ("sqnr_vs_integer_db", "adc_sweep_full_range", "^-",
                     "full-range ADC, ideal, vs int8 product"),
                    ("sqnr_vs_integer_db", "adc_sweep_offset_encoding", "v:",
                     "offset encoding, full range, ideal, vs int8 product")):
                ax.plot(bits, [_y(p, key) for p in d[sweep]], style, label=label)
            ax.axhline(dig, color="gray", ls=":", label="digital int8 vs float")
            ax.axvline(data["adc_bits_exact"], color="black", lw=0.8, ls="--")
            ax.set_xlabel("ADC bits")
            ax.set_ylabel("SQNR (dB)")
            ax.set_title(f"{name} (K={d['k']}): SQNR vs ADC bits (exact drawn at {cap:g} dB)")
            ax.legend(fontsize=7, loc="upper left")
            ax = row[1]
            levels = [p["noise"] for p in d["programming_noise_sweep"]]
            xs = [max(v, 1e-3) for v in levels]
            for key, sweep, style, label in (
                    ("sqnr_vs_integer_db", "programming_noise_sweep", "o-",
                     "programming noise, vs int8 product"),
                    ("sqnr_vs_float_db", "programming_noise_sweep", "s-",
                     "programming noise, vs float"),
                    ("sqnr_vs_integer_db", "read_noise_sweep", "o--",
                     "read noise, vs int8 product"),
                    ("sqnr_vs_float_db", "read_noise_sweep", "s--", "read noise, vs float")):
                ax.plot(xs, [_y(p, key) for p in d[sweep]], style, label=label)
            ax.axhline(dig, color="gray", ls=":", label="digital int8 vs float")
            ax.set_xscale("log")
            ax.set_xlabel("relative noise sigma (0 drawn at 1e-3)")
            ax.set_ylabel("SQNR (dB)")
            ax.set_title(f"{name}: SQNR vs noise ({data['adc_bits_exact']}-bit ADC; exact at "
                         f"{cap:g} dB)")
            ax.legend(fontsize=7)
        fig.savefig(path, format="png", dpi=100, metadata={"Software": None})
    finally:
        plt.close(fig)


def _db(v: float | None) -> str:
    return "exact" if v is None else f"{v:.1f}"


def readme(data: dict[str, Any]) -> str:
    """The study's README.md, generated from `cim_accuracy`'s result."""
    xb, layers = data["crossbar"], data["layers"]
    names = list(layers)
    first = layers[names[0]]
    lines = [
        "# CiM accuracy: SQNR of the analog crossbar path on llama2-7b layer shapes", "",
        f"Regenerate with `{data['command']}` (code: `sim/studies/cim_accuracy.py`, model: "
        "`sim/units/cim/numerics.py`). This README, `cim_accuracy.png` and `cim_accuracy.json` are "
        "written by that command; the numbers are never edited by hand.", "",
        "## Setup", "",
        f"- Crossbar: preset `{data['preset']}` ({xb['rows']}x{xb['cols']}, {xb['cell_bits']}-bit "
        f"cells, {xb['weight_bits']}-bit weights in {-(-xb['weight_bits'] // xb['cell_bits'])} "
        f"slices, {xb['input_bits']}-bit inputs through {xb['dac_bits']}-bit DACs, "
        f"{xb['adc_bits']}-bit ADC, programming noise {xb['programming_noise']:g}, read noise "
        f"{xb['read_noise']:g}, ADC full scale {xb['adc_range']:g} of the largest possible "
        f"column sum). An ADC of {data['adc_bits_exact']} bits resolves every column sum up to "
        "that full scale exactly (vertical line in the plot; larger sums clip); a full-range "
        f"ADC needs {data['adc_bits_exact_full_range']} bits, the offset encoding "
        f"{data['adc_bits_exact_offset']}.",
        "- Layers: " + ", ".join(f"{n} (K={layers[n]['k']}, N={layers[n]['n_full']})"
                                 for n in names)
        + f"; {first['tokens']} tokens and the first {first['n_computed']} output columns are "
        "computed (subsampled to keep the study near a minute on 2 cores; the whole K is kept).",
        f"- Data (synthetic, seed {data['seed']}): weights {data['data']['weights']}; "
        f"activations {data['data']['activations']} (outlier channels as LLM.int8() reports "
        "them: a few fixed hidden dimensions; count and scale are this study's choice). "
        f"{data['data']['quantisation']}.",
        "- SQNR vs int8 product: the analog error alone (CiM integer output against "
        "`xq @ wq`). SQNR vs float: the whole error against `x @ w` in float64, int8 "
        "quantisation included; the digital int8 line is quantisation alone.", "",
        "## SQNR (dB) against ADC bits", "",
        "Columns: ideal devices (vs the int8 product, vs float); preset noise (vs float); "
        f"ideal devices with a full-range ADC (full scale at the largest possible column "
        f"sum instead of {xb['adc_range']:g} of it; vs int8); the offset encoding with a "
        "full-range ADC, ideal devices (vs int8).", "",
        "| layer | ADC bits | ideal, vs int8 | ideal, vs float | noise, vs float | "
        "full range, vs int8 | offset, vs int8 |",
        "|---|---|---|---|---|---|---|",
    ]
    for n in names:
        d = layers[n]
        for i, p in enumerate(d["adc_sweep_ideal_devices"]):
            row = [d[key][i] for key in ("adc_sweep_preset_noise", "adc_sweep_full_range",
                                         "adc_sweep_offset_encoding")]
            lines.append(f"| {n} | {p['adc_bits']} | {_db(p['sqnr_vs_integer_db'])} | "
                         f"{_db(p['sqnr_vs_float_db'])} | {_db(row[0]['sqnr_vs_float_db'])} | "
                         f"{_db(row[1]['sqnr_vs_integer_db'])} | "
                         f"{_db(row[2]['sqnr_vs_integer_db'])} |")
    lines += ["", "Digital int8 (quantisation only) vs float: " + ", ".join(
        f"{n} {layers[n]['digital_int8_vs_float']['sqnr_db']:.1f} dB" for n in names) + ".",
        "Analog error non-increasing as ADC bits rise (ideal devices): " + ", ".join(
        f"{n} {'yes' if layers[n]['error_monotone_in_adc_bits'] else 'NO'}" for n in names)
        + ".", "",
        f"## SQNR (dB) against device noise ({data['adc_bits_exact']}-bit ADC)", "",
        "| layer | relative sigma | programming, vs int8 | programming, vs float | "
        "read, vs int8 | read, vs float |",
        "|---|---|---|---|---|---|"]
    for n in names:
        d = layers[n]
        for a, b in zip(d["programming_noise_sweep"], d["read_noise_sweep"]):
            lines.append(f"| {n} | {a['noise']:g} | {_db(a['sqnr_vs_integer_db'])} | "
                         f"{_db(a['sqnr_vs_float_db'])} | {_db(b['sqnr_vs_integer_db'])} | "
                         f"{_db(b['sqnr_vs_float_db'])} |")
    lines += ["", "![SQNR vs ADC bits and noise](cim_accuracy.png)", "",
              "## Reading the numbers", "", *_findings(data), ""]
    return "\n".join(lines)


def _first_exact(sweep: list[dict[str, Any]]) -> str:
    bits = [p["adc_bits"] for p in sweep if p["exact"]]
    return f"{min(bits)} bits" if bits else "no swept width"


def _findings(data: dict[str, Any]) -> list[str]:
    """Statements for the README, each computed from the data."""
    layers, xb = data["layers"], data["crossbar"]
    out = []
    for n, d in layers.items():
        at = {p["adc_bits"]: p for p in d["adc_sweep_ideal_devices"]}
        pre = at.get(xb["adc_bits"])
        noisy = {p["adc_bits"]: p for p in d["adc_sweep_preset_noise"]}.get(xb["adc_bits"])
        out.append(
            f"- {n}: with ideal devices the analog output equals the int8 product from "
            f"{_first_exact(d['adc_sweep_ideal_devices'])} (ADC range {xb['adc_range']:g}), "
            f"from {_first_exact(d['adc_sweep_full_range'])} with a full-range ADC, and from "
            f"{_first_exact(d['adc_sweep_offset_encoding'])} with the offset encoding. "
            + (f"At the preset's {xb['adc_bits']} bits the SQNR against float is "
               f"{_db(pre['sqnr_vs_float_db'])} dB ideal and {_db(noisy['sqnr_vs_float_db'])} dB "
               f"with the preset noise (analog error alone: "
               f"{_db(noisy['sqnr_vs_integer_db'])} dB against the int8 product), against "
               f"{d['digital_int8_vs_float']['sqnr_db']:.1f} dB for digital int8."
               if pre and noisy else ""))
    exact_here = all(p["exact"] for d in layers.values()
                     for p in d["adc_sweep_ideal_devices"] if p["adc_bits"] >= xb["adc_bits"])
    out.append(
        "- Below the exact width, the low-bit codes of the mostly small column sums round "
        "away: LLM-shaped activations (int8 per token, stretched by the outlier channels) "
        "put most inputs near zero, so a coarse ADC step loses most of the signal. A full "
        f"scale sized to the sums that occur (the preset's adc_range {xb['adc_range']:g}) "
        "recovers those bits; "
        + ("on these layers no sum reached it (the output is exact from the preset's ADC "
           "width up), so nothing clipped." if exact_here else
           "on these layers some sums exceed it and clip (the output is not exact at the "
           "preset's ADC width)."))
    out.append(
        "- The offset encoding (ISAAC) adds 2^(bits-1) to every weight and input, so each "
        "column sum carries a large sign-free part; its ADC error scales with that part, not "
        "with the small signed result, and its analog SQNR below the exact width is far "
        "lower than the differential encoding's (negative dB: the error exceeds the signal).")
    quiet = sorted({p["noise"] for d in layers.values()
                    for key in ("programming_noise_sweep", "read_noise_sweep")
                    for p in d[key] if p["exact"] and p["noise"] > 0})
    out.append(
        "- Device noise is relative to conductance (the off state's included), so it grows "
        "with the weight it sits on; an error below half an ADC step rounds away"
        + (f", which is why a noise sigma of {', '.join(f'{v:g}' for v in quiet)} "
           "still gave an exact output in at least one sweep." if quiet else "."))
    return out


def headline(data: dict[str, Any]) -> str:
    """SQNR against float per layer: int8 quantisation alone, and the analog path with the
    preset's noise at its ADC width and one bit less."""
    bits = data["crossbar"]["adc_bits"]

    def at(layer: dict[str, Any], b: int) -> str:
        hit = [r for r in layer["adc_sweep_preset_noise"] if r["adc_bits"] == b]
        return f"{hit[0]['sqnr_vs_float_db']:.1f} dB" if hit else "-"
    rows = [[name, f"{layer['digital_int8_vs_float']['sqnr_db']:.1f} dB", at(layer, bits),
             at(layer, bits - 1)] for name, layer in data["layers"].items()]
    return text_table(["layer (SQNR vs float)", "digital int8", f"CiM, {bits}-bit ADC",
                       f"CiM, {bits - 1}-bit ADC"], rows)
