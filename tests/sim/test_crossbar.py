"""The CiM crossbar description (`sim.units.cim.crossbar`): the preset, and impossible values
refused with the field's name, by the loader and by ``pdsim cim``.

References: the preset's derived figures against the ISAAC component powers they come from.
"""

import re

import pytest

from sim.cli.main import main
from sim.units.cim.crossbar import load_cim, parse_cim
from sim.errors import ConfigError


@pytest.fixture(scope="module")
def halo():
    return load_cim("halo-cim").unit


def test_preset_loads_with_isaac_derived_figures(halo):
    """The preset's per-event energies are ISAAC's component powers divided out (ISAAC,
    ISCA 2016): ADC 16 mW / 8 ADCs / 1.28 GS/s; arrays 2.4 mW / 8 x 100 ns; DACs 4 mW /
    1024 x 100 ns. Relative tolerance 1e-3 (the YAML rounds to four digits)."""
    xb = halo.crossbar
    assert (xb.rows, xb.cols, xb.cell_bits, xb.dac_bits, xb.adc_bits) == (128, 128, 2, 1, 8)
    assert halo.crossbars == 168 * 12 * 8
    assert xb.adc_energy_j == pytest.approx(16e-3 / 8 / 1.28e9, rel=1e-3)
    assert xb.read_energy_j == pytest.approx(2.4e-3 / 8 * 100e-9, rel=1e-3)
    assert xb.dac_energy_j == pytest.approx(4e-3 / 1024 * 100e-9, rel=1e-3)
    assert xb.adc_time_s * 128 == pytest.approx(xb.read_time_s, rel=1e-9)  # ADC keeps pace


@pytest.mark.parametrize("change, field", [
    ({"adc_bits": 0}, "crossbar.adc_bits"),
    ({"cell_bits": 4, "weight_bits": 2}, "crossbar.cell_bits"),
    ({"programming_noise": -0.1}, "crossbar.programming_noise"),
    ({"read_noise": -1}, "crossbar.read_noise"),
    ({"dac_bits": 4, "input_bits": 2}, "crossbar.dac_bits"),
    ({"adcs": 0}, "crossbar.adcs"),
    ({"adc_range": 1.5}, "crossbar.adc_range"),
    ({"encoding": "ternary"}, "crossbar.encoding"),
    ({"rows": -1}, "crossbar.rows"),
])
def test_impossible_crossbar_is_refused_with_the_field(change, field):
    import yaml
    from importlib import resources
    data = yaml.safe_load((resources.files("sim") / "presets/cim/halo-cim.yaml").read_text())
    data["crossbar"].update(change)
    with pytest.raises(ConfigError, match="^" + re.escape(f"my.yaml: {field}: ")):
        parse_cim(yaml.safe_dump(data), "my.yaml")


def test_cli_exits_2_with_one_line_on_impossible_parameters(tmp_path, capsys):
    from importlib import resources
    text = (resources.files("sim") / "presets/cim/halo-cim.yaml").read_text()
    for old, new in (("adc_bits: 8 ", "adc_bits: 0 "), ("cell_bits: 2 ", "cell_bits: 8 "),
                     ("read_noise: 0.01 ", "read_noise: -0.01 ")):
        bad = tmp_path / "bad.yaml"
        assert old in text
        bad.write_text(text.replace(old, new))
        assert main(["cim", "--m", "1", "--n", "8", "--k", "8", "--hw", str(bad)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("pdsim cim: error: ") and "must be" in err
    assert main(["cim", "--m", "1", "--n", "8", "--k", "8", "--hw", "nope"]) == 2
    assert "unknown CiM preset 'nope'" in capsys.readouterr().err
    # weights narrower than a cell (int4 = 4 bits, 3 magnitude bits, against 4-bit cells)
    wide = tmp_path / "wide.yaml"
    wide.write_text(text.replace("cell_bits: 2 ", "cell_bits: 4 "))
    assert main(["cim", "--m", "1", "--n", "8", "--k", "8", "--hw", str(wide),
                 "--weight-dtype", "int4"]) == 2
    assert "narrower than the crossbar's 4-bit cells" in capsys.readouterr().err
