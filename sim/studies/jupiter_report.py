"""README and plot of `pdsim reproduce jupiter` (sim/studies/jupiter.py), each a function of
the study's JSON alone."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from sim.studies.jupiter import ABLATIONS, COMMAND, METHODS, OWN_LINKS, headline

PARTS = ("compute", "transfer", "waiting")
COLOURS = {"compute": "#4c72b0", "transfer": "#dd8452", "waiting": "#aaaaaa"}


def plot(data: dict[str, Any], path: Path) -> None:
    """One panel per (model, link): end-to-end latency of each method on each board count as
    a stacked bar of compute, transfer and waiting. Bars taller than twice the tallest
    non-tensor-parallel bar are cut there and labelled with their total."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r["model"] for r in data["runs"]))
    links = list(dict.fromkeys(r["link"] for r in data["runs"]))
    fig, axes = plt.subplots(len(models), len(links), figsize=(6.5 * len(links),
                                                                 4.2 * len(models)),
                             squeeze=False)
    short = {"one-device": "1", "naive-pipeline": "N", "tensor-parallel": "T", "jupiter": "J"}
    for row, model in enumerate(models):
        for col, link in enumerate(links):
            ax = axes[row][col]
            runs = [r for r in data["runs"] if r["model"] == model and r["link"] == link]
            cap = 2 * max(r["methods"][k]["e2e_s"] for r in runs for k in METHODS
                          if k != "tensor-parallel")
            ticks, labels = [], []
            for i, r in enumerate(runs):
                ax.text(i * (len(METHODS) + 1) + (len(METHODS) - 1) / 2, -0.09,
                        f"{r['devices']} boards", transform=ax.get_xaxis_transform(),
                        ha="center", fontsize=8)
                for j, k in enumerate(METHODS):
                    x = i * (len(METHODS) + 1) + j
                    ticks.append(x)
                    labels.append(short[k])
                    m = r["methods"][k]
                    if not m["fits"]:
                        ax.text(x, cap * 0.02, "no fit", rotation=90, ha="center",
                                va="bottom", fontsize=7)
                        continue
                    bottom = 0.0
                    for p in PARTS:
                        h = min(m["breakdown"][p], max(0.0, cap - bottom))
                        ax.bar(x, h, bottom=bottom, color=COLOURS[p],
                               label=p if (i, j) == (0, 1) else None)
                        bottom += h
                    if m["e2e_s"] > cap:
                        ax.text(x, cap / 2, f"{m['e2e_s']:.0f} s", rotation=90, ha="center",
                                va="center", fontsize=7, color="white")
            ax.set_ylim(0, cap * 1.02)
            ax.set_xticks(ticks, labels, fontsize=7)
            ax.set_ylabel("end-to-end s")
            ax.set_title(f"{model}, Orin NX boards over {link}", fontsize=9)
            ax.legend(fontsize=7, loc="upper left")
    fig.suptitle("end-to-end latency of one request: 1 one board, N naive pipeline, "
                 "T tensor parallel, J Jupiter (bars cut at the axis are labelled)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)


def _fill(text: str, first: str = "", rest: str = "") -> str:
    return textwrap.fill(" ".join(text.split()), 92, initial_indent=first,
                         subsequent_indent=rest)


def _run(data: dict, model: str, devices: int, link: str) -> dict:
    return next(r for r in data["runs"] if (r["model"], r["devices"], r["link"])
                == (model, devices, link))


def _table(r: dict) -> str:
    lines = ["| method | TTFT s | end-to-end s | compute s | transfer s | waiting s | note |",
             "|---|---|---|---|---|---|---|"]
    for k in (*METHODS, *ABLATIONS, OWN_LINKS):
        if k not in r["methods"]:
            continue
        m = r["methods"][k]
        if not m["fits"]:
            why = m["detail"].get("why") or (f"needs {m['need_gb']:.1f} GB on a board of "
                                             f"{m['have_gb']:.1f} GB")
            lines.append(f"| {k} | - | - | - | - | - | does not fit: {why} |")
            continue
        b = m["breakdown"]
        d = m["detail"]
        note = (f"layers {d['layers']}, chunks of {d['chunk_tokens']}, outline "
                f"{d['outline_s']:.1f} s, expansions {d['expansions_s']:.1f} s in "
                f"{d['micro_batches']} micro-batch(es)" if "layers" in d else "")
        lines.append(f"| {k} | {m['ttft_s']:.2f} | {m['e2e_s']:.1f} | {b['compute']:.1f} | "
                     f"{b['transfer']:.1f} | {b['waiting']:.1f} | {note} |")
    return "\n".join(lines)


def _order(piped: list[float], batch: list[float]) -> str:
    """Which of the two is faster, seed by seed."""
    if all(b < a for a, b in zip(piped, batch)):
        return "one batch faster at every seed"
    if all(b > a for a, b in zip(piped, batch)):
        return "one batch slower at every seed"
    return "either faster, by seed"


def readme(data: dict[str, Any]) -> str:
    s = data["setup"]
    top = data["max_reduction"]
    runs = data["runs"]
    models = list(dict.fromkeys(r["model"] for r in runs))
    boards = sorted({r["devices"] for r in runs})
    links = list(dict.fromkeys(r["link"] for r in runs))
    m0, d0, l0 = models[0], boards[0], links[0]
    r0 = _run(data, m0, d0, l0)
    one = r0["methods"]["one-device"]
    j0 = r0["methods"]["jupiter"]
    tp_hi = _run(data, m0, boards[-1], l0)["methods"]["tensor-parallel"]
    red = sorted(v for r in runs for k, v in r["reduction"].items()
                 if k != "tensor-parallel")

    def ratios(name: str) -> list[float]:
        return sorted(r["methods"][name]["e2e_s"] / r["methods"]["jupiter"]["e2e_s"]
                      for r in runs if r["methods"][name]["fits"])
    nospec = ratios("jupiter-no-spec")
    plain_batch = sorted(r["methods"]["jupiter-no-spec-one-batch"]["e2e_s"]
                         / r["methods"]["jupiter-no-spec"]["e2e_s"] for r in runs
                         if r["methods"]["jupiter-no-spec"]["fits"])
    by_boards = {d: sorted(r["methods"]["jupiter-one-batch"]["e2e_s"]
                           / r["methods"]["jupiter"]["e2e_s"] for r in runs
                           if r["devices"] == d) for d in boards}
    air = [r for r in runs if OWN_LINKS in r["methods"]]
    air_text = ""
    if air:
        big = max(air, key=lambda r: (r["devices"], r["model"] == m0))
        bj, bo = big["methods"]["jupiter"], big["methods"][OWN_LINKS]
        e2e_air = sorted(r["methods"]["jupiter"]["e2e_s"] / r["methods"][OWN_LINKS]["e2e_s"]
                         for r in air)
        air_text = f"""**One Wi-Fi channel for all boards costs the prefill, little else.**
        A chunk's hidden state crosses the air once per hop, so a prompt on D boards puts
        D - 1 copies of it on one channel: on {big['model']}, {big['devices']} boards,
        Jupiter's TTFT is {bj['ttft_s']:.2f} s, against {bo['ttft_s']:.2f} s with each link
        direction on air of its own (`{OWN_LINKS}`, same model otherwise; the planner then
        chose chunks of {bj['detail']['chunk_tokens']} and {bo['detail']['chunk_tokens']}
        tokens). Decode moves one token's hidden state per hop, whose airtime is small next
        to the link's latency (which overlaps other transfers), so end to end the shared
        channel costs Jupiter {e2e_air[0]:.2f}x to {e2e_air[-1]:.2f}x its time on own air.
        Tensor parallelism's prompt all-reduces are airtime-bound on one channel (all 2 D
        (D - 1) pieces back to back), its per-token ones latency-bound as before."""
    sp = data.get("seed_spread", [])
    spread_text = "; ".join(
        f"{x['model']}, {x['devices']} boards, {x['link']}: Jupiter "
        f"{min(x['jupiter']):.1f} to {max(x['jupiter']):.1f} s, one batch "
        f"{min(x['jupiter-one-batch']):.1f} to {max(x['jupiter-one-batch']):.1f} s, "
        f"{_order(x['jupiter'], x['jupiter-one-batch'])}" for x in sp)
    fastest = {ln: sorted({min((k for k in METHODS[:3] if r["methods"][k]["fits"]),
                               key=lambda k: r["methods"][k]["e2e_s"])
                           for r in runs if r["link"] == ln}) for ln in links}
    fastest_text = "; ".join(f"{ln}: {', '.join(v)}" for ln, v in fastest.items())
    link_text = "; ".join(f"`{n}` {v['bandwidth_bytes_per_s'] * 8 / 1e6:.0f} Mb/s, "
                          f"{v['latency_s'] * 1e3:g} ms one way" for n, v in s["links"].items())
    setup = f"""Setup (chosen before looking at any result; nothing tuned to the paper, whose
        testbed figures pdsim does not have, so every figure here is a CHOSEN parameter
        unless cited): one request, a {s['prompt_tokens']}-token prompt; the answer is
        {s['points']} points of {s['point_tokens']} tokens ({s['answer_tokens']} tokens,
        what every baseline generates); Jupiter first decodes a {s['outline_tokens']}-token
        outline (charged to Jupiter), then expands the points together, each starting with
        its line of the outline as a short prefill over the shared prompt + outline cache.
        Speculation: {s['gamma']} Medusa-style draft heads (Jupiter's published code uses
        Medusa heads on Vicuna-7B, a Llama-2-class model), per-token acceptance
        {s['accept']} (sampled with seed {s['seed']}; {s['expected_tokens_per_verify']:.2f}
        expected tokens per verify step), each point drawing its own counts (from its own
        seed, so the same in any grouping) and leaving its batch when done. Boards:
        `{s['board']}` (the whole GPU at MAXN, fp16, roofline). Links ({link_text}): every
        pair of neighbouring boards has a link (a ring); over wifi all of them share one
        medium, one channel carrying one transfer's bytes at a time (docs/edge.md, "Shared
        medium"); over Ethernet each is its own (a switch's full-duplex ports). Baselines on
        the same boards:
        one board (when the model fits), a naive layer pipeline (even split, the prompt as
        one chunk, plain decode a token at a time through every board), and tensor
        parallelism over the links (two ring all-reduces per layer)."""
    bullets = [
        f"""**Decode dominates, and a board's decode is memory-bound.** One board spends
        {one['e2e_s']:.1f} s on {m0} ({one['ttft_s']:.2f} s of it TTFT): each token reads
        every weight from LPDDR5. A naive pipeline reads the same weights, only spread over
        the boards, and adds the hops, so it is never faster than one board where one board
        fits; its value is memory (13B does not fit one 16 GB board).""",
        f"""**Jupiter's gain is in decode**: the points decode together, so a board reads its
        weights once for several sequences (a memory-bound step costs about the same for 8
        sequences as for one), and each verify step yields
        {s['expected_tokens_per_verify']:.2f} tokens on average. The outline is still
        sequential: on {m0}, {d0} boards over {l0}, it takes {j0['detail']['outline_s']:.1f} s
        of Jupiter's {j0['e2e_s']:.1f} s, the expansions {j0['detail']['expansions_s']:.1f} s.
        Against the baselines that fit, other than tensor parallelism, Jupiter's end-to-end
        reduction ranges {red[0]:.1f}x to {red[-1]:.1f}x; without speculation
        (`jupiter-no-spec`) Jupiter takes {nospec[0]:.2f}x to {nospec[-1]:.2f}x as long. The
        TTFT gain from the chunked,
        planned prefill is small in absolute terms: the prompt is short next to the
        answer.""",
        f"""**Pipelining the points over the boards against one batch.** Without
        speculation, all points in one batch (`jupiter-no-spec-one-batch`) take
        {plain_batch[0]:.2f}x to {plain_batch[-1]:.2f}x as long as the points pipelined in
        one group per board (`jupiter-no-spec`): a memory-bound board takes about as long
        for a batch of 8 as for 1, so a round costs about one read of all the weights either
        way, and pipelining also hides the hops' latency behind other groups' compute. With
        speculation, one batch (`jupiter-one-batch`) takes
        {"; ".join(f"{by_boards[d][0]:.2f}x to {by_boards[d][-1]:.2f}x on {d} boards"
                   for d in boards)} Jupiter's time. Every point accepts its own drafts, a
        group runs until its slowest point is done (finished points leave it), and the
        request ends with the slowest point whichever way the points are grouped. What
        grows with the number of groups is the last board's work: it runs the LM head and
        the {s['gamma']} draft heads once per group per round, so with one group per board
        it is the pipeline's bottleneck on many boards, while one batch pays them once per
        round. The sampled acceptance moves these figures by several percent (seeds
        {data["seed_spread"][0]["seeds"][0] if sp else 0} to
        {data["seed_spread"][0]["seeds"][-1] if sp else 0}: {spread_text}).""",
        air_text,
        f"""**Tensor parallelism over edge links is latency-bound**: every token pays
        2 x layers ring all-reduces of 2 (D - 1) link latencies each; on {m0} over {l0} with
        {boards[-1]} boards that is {tp_hi['e2e_s']:.0f} s end to end, so Jupiter's largest
        reduction, {top['value']:.1f}x, is over tensor parallelism ({top['model']},
        {top['devices']} boards, {top['link']}). The fastest baseline per link:
        {fastest_text}.""",
        f"""**Against the paper's "up to {data['paper']['e2e_reduction_max']}x"**: pdsim's
        reduction depends on which baseline and link one divides by ({red[0]:.1f}x to
        {top['value']:.1f}x here), and on the answer's shape: with P points and E tokens per
        verify step the expansions can go at most about P x E faster than one sequence,
        while the outline stays sequential. The paper's baselines (prior collaborative edge
        systems), boards, links, answer lengths and acceptance rates are not available to
        pdsim (only the abstract's headline is in REFERENCE.md), so the paper's figure is
        shown beside pdsim's, not matched.""",
    ]
    bullets = [b for b in bullets if b]
    limits = """Not modelled: Wi-Fi through an access point (each frame twice on the air;
        the boards here share one channel as an ad-hoc network would), the planner's view
        of the medium (it splits the layers as if each hop were its own link; the chunk size
        is chosen by simulating the medium), link jitter (mean latency only),
        tree-structured Medusa verification (a chain of gamma + 1
        tokens is verified), the draft heads' residual blocks (each head is charged one LM
        head), answer quality (the outline/point split is taken as free of cost to quality),
        the embedding's and LM head's collectives under tensor parallelism, CPU-GPU staging
        on the boards, and the planner's search over the decode's split (the prefill's split
        is reused)."""
    per_run = "\n\n".join(f"### {r['model']}, {r['devices']} boards, {r['link']}\n\n"
                          f"{_table(r)}" for r in runs)
    return f"""# Jupiter: collaborative edge inference (regenerated by `{COMMAND}`)

Ye, Ouyang, Zeng, Qian, Chu, Tang, Chen, "Jupiter: Fast and Resource-Efficient Collaborative
Inference of Generative LLMs on Edge Devices", IEEE INFOCOM 2025 (arXiv 2504.08242;
code github.com/ysyisyourbrother/Jupiter). Every number comes from `jupiter.json`; the setup
is in `sim/studies/jupiter.py`, the model in `sim/edge_jupiter.py`, `sim/edge_decode.py`,
`sim/edge_tp.py` and docs/edge.md ("Jupiter").

{_fill(setup)}

## End-to-end latency (s) and Jupiter's reduction over the best baseline

```
{headline(data)}
```

![latency breakdown per method](jupiter.png)

Breakdown: compute and transfer are the seconds of the last-finishing unit of work's own ops
(the last prompt chunk in a prefill, the last-finishing group of points in decode); waiting
is the rest, that unit held up by a board or link busy with earlier chunks or other points.

## Differences, from the model

{chr(10).join(_fill(b, "* ", "  ") for b in bullets)}

{_fill(limits)}

## Every run

`jupiter-no-spec`: Jupiter without speculation; `jupiter-one-batch`: Jupiter with all points
in one batch instead of one micro-batch per board; `jupiter-no-spec-one-batch`: neither;
`{OWN_LINKS}` (wifi only): Jupiter with each link direction on air of its own instead of
the one shared channel.

{per_run}
"""
