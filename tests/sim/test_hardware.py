"""Hardware descriptions: presets against SPAD Table 3, and validation of bad files."""

import pytest
import yaml

from sim.errors import ConfigError
from sim.presets import load_hardware, parse_hardware, preset_names

# REFERENCE.md, SPAD (arXiv 2510.08544) Table 3: FP16 tensor peak, FP32 vector peak, memory
# bandwidth. Checked within 1% as the table rounds to three digits.
TABLE3 = {
    "spad-prefill": (1.92e15, 32.4e12, 2048e9),
    "spad-decode": (0.54e15, 18.2e12, 3352e9),
    "h100": (0.99e15, 66.9e12, 3352e9),
}


@pytest.mark.parametrize("name", sorted(TABLE3))
def test_presets_reproduce_spad_table3(name):
    chip = load_hardware(name).system.chip
    tensor, vector, bandwidth = TABLE3[name]
    assert chip.peak_tensor_flops("fp16") == pytest.approx(tensor, rel=0.01)
    assert chip.peak_vector_flops == pytest.approx(vector, rel=0.01)
    assert chip.memory.bandwidth_bytes_per_s == pytest.approx(bandwidth, rel=0.01)


def test_a100_matches_datasheet():
    # NVIDIA A100 datasheet: 312 TFLOP/s FP16 dense, 19.5 TFLOP/s FP32, 2039 GB/s (80 GB SXM).
    chip = load_hardware("a100").system.chip
    assert chip.peak_tensor_flops("fp16") == pytest.approx(312e12, rel=0.01)
    assert chip.peak_vector_flops == pytest.approx(19.5e12, rel=0.01)
    assert chip.memory.bandwidth_bytes_per_s == pytest.approx(2039e9, rel=0.01)


def test_every_preset_loads_and_is_hashable():
    assert {"h100", "a100", "spad-prefill", "spad-decode"} <= set(preset_names())
    for name in preset_names():
        hash(load_hardware(name).system)


def _h100_text(**replace_lines):
    text = load_hardware("h100").text
    for old, new in replace_lines.items():
        assert old in text
        text = text.replace(old, new)
    return text


@pytest.mark.parametrize("old, new, expected", [
    ("rows: 16 ", "rows: 0 ", "chip.core.systolic_array.rows: must be >= 1, got 0"),
    ("dataflow: os", "dataflow: diagonal", "chip.core.systolic_array.dataflow: unknown dataflow"),
    ("type: HBM3", "type: HBM9", "chip.memory.type: unknown memory type 'HBM9'"),
    ("pin_rate_bps: 5.2375e9", "pin_rate_bps: -1", "chip.memory.pin_rate_bps: must be > 0"),
    ("memory: 0.85", "memory: 1.5", "chip.efficiency.memory: must be in (0, 1]"),
    ("tensor_parallel: 1", "tensor_parallel: 16", "tensor_parallel: must be <= num_chips (8)"),
    ("cores: 132", "cores: many", "chip.cores: expected a number, got 'many'"),
    ("cores: 132", "cores: 13.5", "chip.cores: expected an integer"),
    ("        fp16: 1\n", "        fp17: 1\n", "macs_per_cycle.fp17: unknown dtype 'fp17'"),
    ("  area_mm2: 814", "  area_mm: 814", "chip.area_mm: unknown field (allowed: name, cores"),
])
def test_bad_fields_name_the_field(old, new, expected):
    with pytest.raises(ConfigError) as err:
        parse_hardware(_h100_text(**{old: new}), "my.yaml")
    message = str(err.value)
    assert message.startswith("my.yaml: ")
    assert expected in message
    assert "\n" not in message


def test_missing_field_and_malformed_yaml():
    data = yaml.safe_load(load_hardware("h100").text)
    del data["chip"]["memory"]
    with pytest.raises(ConfigError, match="my.yaml: chip.memory: missing required field"):
        parse_hardware(yaml.safe_dump(data), "my.yaml")
    with pytest.raises(ConfigError, match="my.yaml: malformed YAML at line 3, column 1: "):
        parse_hardware("name: x\nchip: [1, 2\n", "my.yaml")
    with pytest.raises(ConfigError, match="my.yaml: top level: expected a mapping"):
        parse_hardware("- 1\n- 2\n", "my.yaml")


def test_bandwidth_is_derived_from_bus_and_pin_rate():
    mem = load_hardware("spad-prefill").system.chip.memory
    assert mem.bandwidth_bytes_per_s == mem.bus_width_bits * mem.pin_rate_bps / 8 == 2048e9


def test_unsupported_dtype_is_refused():
    sa = load_hardware("a100").system.chip.core.systolic_array
    with pytest.raises(ConfigError, match=r"'fp8' is not supported .*\(supported: bf16, fp16"):
        sa.macs_per_pe_per_cycle("fp8")


@pytest.mark.parametrize("value, refused", [
    ("5.0e-324", True), ("1.0e-30", True), ("1.0e300", True), ("-1.0e30", True),
    ("1.0e-24", False), ("1.0e24", False)])
def test_real_fields_are_bounded_so_results_stay_finite(value, refused):
    """Found by tests/fuzz: an L2 bandwidth of 5e-324 B/cycle (> 0, so accepted) ended in a
    ZeroDivisionError in `pdsim gemm --hw`; a CiM read energy of 1e300 J gave inf energy."""
    text = load_hardware("h100").text.replace("bandwidth_bytes_per_cycle: 5120 ",
                                              f"bandwidth_bytes_per_cycle: {value} ")
    if not refused:
        assert parse_hardware(text, "x.yaml").chip.l2.bandwidth_bytes_per_cycle == float(value)
        return
    with pytest.raises(ConfigError, match=r"x.yaml: chip.l2.bandwidth_bytes_per_cycle: must be "
                       r"(0 or between 1e-24 and 1e\+24 in size|> 0), got"):
        parse_hardware(text, "x.yaml")


def test_cim_energy_of_1e300_is_refused(tmp_path, capsys):
    from importlib import resources

    from sim.cli.main import main
    text = (resources.files("sim") / "presets/cim/halo-cim.yaml").read_text()
    (tmp_path / "c.yaml").write_text(text.replace("read_energy_j: 3.0e-11",
                                                  "read_energy_j: 1.0e300"))
    assert main(["cim", "--hw", str(tmp_path / "c.yaml"), "--m", "4", "--n", "64", "--k",
                 "64", "--json"]) == 2
    assert "crossbar.read_energy_j: must be 0 or between 1e-24 and 1e+24" in \
        capsys.readouterr().err
