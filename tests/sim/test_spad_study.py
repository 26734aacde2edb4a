"""SPAD's chip-level study (`sim.studies.spad`) against SPAD's published Table 3.

SPAD (arXiv 2510.08544, Table 3) reports performance normalised to its modeled H100 for
BLOOM-176B, FP16, tensor parallel 8, sequence length 1024 (prefill batch 2, decode batch 64):
1.08 / 0.80 (prefill / decode) for its prefill chip and 0.69 / 0.97 for its decode chip. At the
tile detail pdsim reproduces all four within 0.08 absolute; the closest calls are the decode
chip's prefill (about 0.765, 0.075 above) and the prefill chip's decode (about 0.729, 0.071
below). results/spad/README.md ("Modelling choices") explains what drives each difference.
The roofline detail misses the prefill chip's prefill by about 0.21; that is reported, not
asserted here.
"""

import json

import pytest

from sim.studies.spad import PUBLISHED, spad_chips
from sim.studies.spad_report import write_spad_chips

#: SPAD Table 3, typed in from the paper (independent of the module's own copy).
TABLE3 = {("spad-prefill", "prefill"): 1.08, ("spad-prefill", "decode"): 0.80,
          ("spad-decode", "prefill"): 0.69, ("spad-decode", "decode"): 0.97}


@pytest.fixture(scope="module")
def study():
    return spad_chips("tile")


@pytest.mark.parametrize("chip,phase", list(TABLE3), ids=[f"{c}-{p}" for c, p in TABLE3])
def test_tile_detail_matches_spad_table3_within_0_08(study, chip, phase):
    got = study["results"]["tile"][chip]["normalised"][phase]
    assert abs(got - TABLE3[chip, phase]) <= 0.08, f"{chip} {phase}: {got:.3f}"
    assert PUBLISHED[chip][phase] == TABLE3[chip, phase]
    assert study["results"]["tile"][chip]["within_tolerance"][phase]


@pytest.mark.parametrize("detail", ["tile", "roofline"])
def test_normalised_is_h100_time_over_chip_time_and_ops_sum_to_steps(study, detail):
    res = study["results"][detail]
    for r in res.values():
        for phase, key in (("prefill", "prefill_time_s"), ("decode", "decode_step_time_s")):
            assert r["normalised"][phase] == pytest.approx(res["h100"][key] / r[key], rel=1e-12)
            # busy time by op: the prefill's cache writes (DMA) run beside attention (on the
            # arrays), so they add to the ops' sum but not to the step; decode is a chain
            hidden = r["time_by_op_s"][phase]["kv_write"] if phase == "prefill" else 0.0
            assert hidden < r[key] / 100
            assert sum(r["time_by_op_s"][phase].values()) == pytest.approx(r[key] + hidden,
                                                                           rel=1e-9)
            assert sum(r["time_by_group_s"][phase].values()) == pytest.approx(r[key] + hidden,
                                                                              rel=1e-9)
    # the all-reduce costs every chip the same: the same link on all three presets
    ar = {c: r["time_by_group_s"]["decode"]["all_reduce"] for c, r in res.items()}
    assert len(set(ar.values())) == 1 and ar["h100"] > 0


def _table(readme: str, heading: str) -> tuple[list[str], list[list[str]]]:
    """Header and body rows (lists of cells) of the first markdown table after ``heading``."""
    lines = readme[readme.index(heading):].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows[0], rows[2:]


def _ms(cell: str) -> float:
    value, unit = cell.split()
    assert unit == "ms"
    return float(value) * 1e-3


def test_write_gives_three_files_and_readme_numbers_match_json(tmp_path):
    paths = write_spad_chips(tmp_path)
    assert sorted(p.name for p in paths) == ["README.md", "spad_chips.json", "spad_chips.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)
    assert (tmp_path / "spad_chips.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((tmp_path / "spad_chips.json").read_text())
    readme = (tmp_path / "README.md").read_text()
    assert "`pdsim reproduce spad-chips`" in readme

    for detail, heading in (("tile", "## Result (tile detail)"),
                            ("roofline", "## Roofline detail")):
        header, body = _table(readme, heading)
        rows = {row[0].strip("`"): row for row in body}
        assert sorted(rows) == sorted(data["results"][detail])
        for chip, r in data["results"][detail].items():
            row = rows[chip]
            assert _ms(row[1]) == pytest.approx(r["prefill_time_s"], abs=5e-6)
            assert _ms(row[2]) == pytest.approx(r["decode_step_time_s"], abs=5e-6)
            for phase in ("prefill", "decode"):
                at = header.index(f"{phase} vs h100")
                assert float(row[at]) == pytest.approx(r["normalised"][phase], abs=5e-4)
                if chip == "h100":
                    continue
                assert float(row[at + 1]) == r["published"][phase]
                assert float(row[at + 2]) == pytest.approx(r["abs_difference"][phase],
                                                           abs=5e-4)
                assert row[at + 3] == ("yes" if r["within_tolerance"][phase] else "**no**")

    header, body = _table(readme, "## Where the time goes")
    res = data["results"]["tile"]
    assert len(body) == 6
    for row in body:
        chip, phase = row[0].strip("`"), row[1]
        total = res[chip]["prefill_time_s" if phase == "prefill" else "decode_step_time_s"]
        groups = res[chip]["time_by_group_s"][phase]
        assert [_ms(c.split(" (")[0]) for c in row[2:-1]] == pytest.approx(
            list(groups.values()), abs=5e-6)
        assert _ms(row[-1]) == pytest.approx(total, abs=5e-6)
