"""`pdsim serve rank`: the strategy space, a deterministic ranking whose top choice is within
10% of the best goodput found by simulating every strategy, and one-line refusals."""

import pytest

from sim.cli.main import main
from sim.serving.rank import Search, Strategy, enumerate_strategies, rank, simulated_goodput
from sim.serving.workload import load_trace


def test_space_on_four_chips():
    # Hand-enumerated: collocated 4x(1,1), 2x(1,2), 2x(2,1), 1x(2,2), 1x(4,1); disaggregated
    # (pp 1) P1:D3, P2:D2, P3:D1 of (1,1), P2x(1,1):D1x(2,1), P1x(2,1):D2x(1,1),
    # P1x(2,1):D1x(2,1).
    got = {s.label for s in enumerate_strategies(4, lambda tp, pp: True)}
    assert got == {"colloc 4x(tp1,pp1)", "colloc 2x(tp1,pp2)", "colloc 2x(tp2,pp1)",
                   "colloc 1x(tp2,pp2)", "colloc 1x(tp4,pp1)",
                   "disagg P 1x(tp1,pp1) : D 3x(tp1,pp1)", "disagg P 2x(tp1,pp1) : D 2x(tp1,pp1)",
                   "disagg P 3x(tp1,pp1) : D 1x(tp1,pp1)", "disagg P 2x(tp1,pp1) : D 1x(tp2,pp1)",
                   "disagg P 1x(tp2,pp1) : D 2x(tp1,pp1)", "disagg P 1x(tp2,pp1) : D 1x(tp2,pp1)"}
    assert all(s.chips == 4 for s in enumerate_strategies(4, lambda tp, pp: True))
    # Nothing fits: no strategy.
    assert enumerate_strategies(4, lambda tp, pp: tp * pp > 4) == []


def _search():
    return Search(lengths=tuple(load_trace("azure-code", duration_s=600)),
                  slo={"ttft": (90.0, 0.5), "tbt": (90.0, 0.05)}, requests=120, tol=0.05)


@pytest.fixture(scope="module")
def tables():
    """Step-time tables shared by the tests of this module (filling them is the cost)."""
    return {}


def test_ranking_deterministic_and_top_within_10_percent_of_exhaustive(tables):
    search = _search()
    first = rank("llama2-7b", "h100", 2, search, top=2, tables=tables)
    again = rank("llama2-7b", "h100", 2, search, top=2, tables=tables)
    assert first["rows"] == again["rows"]
    exhaustive = {s.label: simulated_goodput(s, "llama2-7b", "h100", search, tables, e)[0]
                  for s, e in zip(first["strategies"], first["estimates"])}
    assert len(exhaustive) == 4  # 2x(1,1), 1x(1,2), 1x(2,1) collocated; P1:D1 disaggregated
    best = max(exhaustive.values())
    assert best > 0
    assert exhaustive[first["rows"][0]["strategy"]] >= 0.9 * best


def test_goodput_is_the_attainment_boundary(tables):
    search = _search()
    s = Strategy(prefill=(1, 1, 1))
    g, runs = simulated_goodput(s, "llama2-7b", "h100", search, tables, 5.0)
    assert runs >= 3
    from sim.serving.rank import attainment
    assert attainment(s, "llama2-7b", "h100", g, search, tables) >= 0.9
    assert attainment(s, "llama2-7b", "h100", g * (1 + search.tol) ** 2, search,
                      tables) < 0.9


@pytest.mark.parametrize("argv, words", [
    (["--chips", "0"], "--chips: must be an integer >= 1"),
    (["--top", "0"], "--top: must be an integer >= 1"),
    (["--slo", "ttft_p90=0.5"], "--slo: rank needs ttft_pNN=S,tbt_pNN=S"),
    (["--model", "nope"], "nope"),
    (["--hardware", "nope"], "nope"),
    (["--rate", "3"], "rank: takes no --rate"),
])
def test_bad_args_exit_2_one_line(capsys, argv, words):
    base = {"--slo": "ttft_p90=0.5,tbt_p90=0.05"}
    args = list(argv)
    if "--slo" not in args:
        args += ["--slo", base["--slo"]]
    code = main(["serve", "rank", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert words in err and err.count("\n") == 1
