"""Jupiter (Ye et al., "Jupiter: Fast and Resource-Efficient Collaborative Inference of
Generative LLMs on Edge Devices", IEEE INFOCOM 2025, arXiv 2504.08242) on pdsim's edge model
(`sim.edge_jupiter`, docs/edge.md "Jupiter"): one request on 2, 4 and 8 Jetson Orin NX 16GB
boards, over Wi-Fi and over Gigabit Ethernet, for Llama-2-7B and 13B, by Jupiter and by three
baselines on the same boards (one board, a naive layer pipeline, tensor parallelism over the
links).

Setup, fixed before looking at any result and not tuned to the paper (whose testbed figures
pdsim does not have: every figure below is CHOSEN unless cited): a ``PROMPT``-token prompt; an
answer of ``POINTS`` points of ``POINT_TOKENS`` tokens each (Skeleton-of-Thought style, which
Jupiter's code builds on), Jupiter's outline ``OUTLINE_TOKENS`` tokens; speculation by
``GAMMA`` Medusa-style draft heads (Jupiter's code uses Medusa heads) with per-token acceptance
``ACCEPT`` (sampled, seed ``SEED``); fp16 weights, activations and KV cache; the roofline chip
model.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from sim.studies import text_table, write_study

COMMAND = "pdsim reproduce jupiter"
MODELS = ("llama2-7b", "llama2-13b")
DEVICES = (2, 4, 8)
LINKS = ("wifi", "ethernet-1g")
SHARED = ("wifi",)  # links whose boards share one medium (docs/edge.md, "Shared medium")
PROMPT = 512
POINTS, OUTLINE_TOKENS, POINT_TOKENS = 8, 64, 64
GAMMA, ACCEPT, SEED = 4, 0.6, 0
#: Jupiter's headline (abstract, arXiv 2504.08242): end-to-end latency up to 26.1x lower
#: than the state of the art.
PAPER = {"e2e_reduction_max": 26.1}
METHODS = ("one-device", "naive-pipeline", "tensor-parallel", "jupiter")
#: Jupiter's decode with mechanisms removed: no speculation; every point in one batch (no
#: pipelining of points over the boards); neither.
ABLATIONS = {"jupiter-no-spec": {"gamma": 0}, "jupiter-one-batch": {"micro_batches": 1},
             "jupiter-no-spec-one-batch": {"gamma": 0, "micro_batches": 1}}
#: Jupiter where the boards share one medium (`SHARED`), re-run with each link direction a
#: timeline of its own (`sim.edge.MultiSystem.own_media`): what sharing the
#: air costs.
OWN_LINKS = "jupiter-own-air"


def outline() -> Any:
    from sim.edge_jupiter import Outline

    return Outline(points=POINTS, outline_tokens=OUTLINE_TOKENS, point_tokens=POINT_TOKENS,
                   gamma=GAMMA, accept=ACCEPT, seed=SEED)


def system(devices: int, link: str):
    """``orin-nx-<devices>-wifi`` with every link replaced by the ``link`` preset; the boards
    share the preset's one Wi-Fi medium over ``wifi`` and none over Ethernet (a switch gives
    each board its own full-duplex port)."""
    from sim.edge import load_multi, load_net

    ms = load_multi(f"orin-nx-{devices}-wifi")
    net = load_net(link)
    return replace(ms, links={k: net for k in ms.links},
                   media=ms.media if link in SHARED else {})


def run(model: str, devices: int, link: str, plan=None, prompt: int = PROMPT) -> dict:
    """Every method (and `ABLATIONS`) for one request; each as a dict of `MethodResult`."""
    from mappers.ir import Precision
    from mappers.models import load_model
    from sim.edge_jupiter import jupiter, run_methods

    plan = plan or outline()
    cfg = load_model(model).config
    ms = system(devices, link)
    kw = {"prompt_tokens": prompt, "precision": Precision()}
    res = run_methods(ms, cfg, plan, **kw)
    for name, change in ABLATIONS.items():
        r = jupiter(ms, cfg, replace(plan, **change), **kw)
        res[name] = replace(r, method=name)
    if ms.media:
        res[OWN_LINKS] = replace(jupiter(ms.own_media(), cfg, plan, **kw), method=OWN_LINKS)
    out = {name: _row(r) for name, r in res.items()}
    j = out["jupiter"]
    best = min((r["e2e_s"] for k, r in out.items() if k in METHODS[:3] and r["fits"]))
    return {"model": model, "devices": devices, "link": link, "methods": out,
            "reduction": {k: r["e2e_s"] / j["e2e_s"] for k, r in out.items()
                          if k in METHODS[:3] and r["fits"]},
            "reduction_best": best / j["e2e_s"]}


def _row(r) -> dict:
    d = asdict(r)
    d.pop("method")
    return d


#: Seeds of the acceptance draws re-run for `seed_spread` (the study's own is `SEED`).
SPREAD_SEEDS = tuple(range(6))


def seed_spread(model: str, devices: int, link: str, plan, prompt: int,
                seeds=SPREAD_SEEDS) -> dict:
    """Jupiter's and `jupiter-one-batch`'s end-to-end seconds under each seed of ``seeds``:
    how much the sampled acceptance moves them (a group ends with its slowest point)."""
    from mappers.ir import Precision
    from mappers.models import load_model
    from sim.edge_jupiter import jupiter

    cfg = load_model(model).config
    ms = system(devices, link)
    kw = {"prompt_tokens": prompt, "precision": Precision()}
    out = {"model": model, "devices": devices, "link": link, "seeds": list(seeds),
           "jupiter": [], "jupiter-one-batch": []}
    for seed in seeds:
        p = replace(plan, seed=seed)
        out["jupiter"].append(jupiter(ms, cfg, p, **kw).e2e_s)
        out["jupiter-one-batch"].append(jupiter(ms, cfg, replace(p, micro_batches=1),
                                                **kw).e2e_s)
    return out


def jupiter_study(models=MODELS, devices=DEVICES, links=LINKS, plan=None,
                  prompt: int = PROMPT, spread: bool = True) -> dict[str, Any]:
    """The study's numbers (module docstring) on the given grid; ``spread``: also
    `seed_spread` on the first model over the first link with the fewest boards and over the
    last link with the most."""
    from sim.edge import load_net

    plan = plan or outline()
    runs = [run(m, d, ln, plan, prompt) for m in models for ln in links for d in devices]
    spreads = [seed_spread(models[0], d, ln, plan, prompt)
               for d, ln in dict.fromkeys(((min(devices), links[0]),
                                           (max(devices), links[-1])))] if spread else []
    top = max(((r["reduction"][k], k, r) for r in runs for k in r["reduction"]),
              key=lambda x: x[0])
    from sim.speculative import expected_tokens
    return {
        "paper": PAPER,
        "setup": {"prompt_tokens": prompt, **asdict(plan), "answer_tokens": plan.answer_tokens,
                  "expected_tokens_per_verify": expected_tokens(plan.accept, plan.gamma)
                  if plan.gamma else 1.0,
                  "board": "jetson-orin-nx-16gb",
                  "links": {ln: asdict(load_net(ln)) for ln in links}},
        "runs": runs,
        "seed_spread": spreads,
        "max_reduction": {"value": top[0], "baseline": top[1], "model": top[2]["model"],
                          "devices": top[2]["devices"], "link": top[2]["link"]},
    }


def headline(data: dict[str, Any]) -> str:
    """End-to-end seconds per method and Jupiter's reduction over the best baseline."""
    rows = []
    for r in data["runs"]:
        m = r["methods"]
        rows.append([r["model"], str(r["devices"]), r["link"]]
                    + [f"{m[k]['e2e_s']:.1f}" if m[k]["fits"] else "no fit" for k in METHODS]
                    + [f"{r['reduction_best']:.1f}x"])
    top = data["max_reduction"]
    table = text_table(["model", "boards", "link", *[f"{k} s" for k in METHODS],
                        "vs best"], rows)
    return (f"{table}\nmax reduction: {top['value']:.1f}x over {top['baseline']} "
            f"({top['model']}, {top['devices']} boards, {top['link']}); paper: up to "
            f"{data['paper']['e2e_reduction_max']}x")


def write_jupiter(out_dir: Path) -> list[Path]:
    """Regenerate ``results/jupiter/`` (``pdsim reproduce jupiter``)."""
    from sim.studies.jupiter_report import plot, readme

    return write_study(Path(out_dir), "jupiter", jupiter_study(), plot, readme)
