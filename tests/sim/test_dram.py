"""DRAM presets and their validation: derived figures against the cited sources, and bad
parameters refused with one line naming the field."""

import pytest
import yaml

from sim.units.cid.dram import dram_names, load_dram, parse_dram
from sim.errors import ConfigError
from sim.schema import to_dict


def test_presets_load_and_match_published_figures():
    """AttAcc's HBM3 stack: 16 GB, 16 channels, 5.2 Gb/s -> 665.6 GB/s (REFERENCE.md quotes
    670.4 GB/s, i.e. 5.2375 Gb/s; 1% apart). CENT's AiM device: 128 Gb, 32 x 16 banks."""
    assert {"hbm3", "gddr6-aim"} <= set(dram_names())
    hbm = load_dram("hbm3")
    assert hbm.org.capacity_bytes == 16 * 2**30
    assert hbm.org.bandwidth_bytes_per_s == pytest.approx(670.4e9, rel=0.01)
    assert hbm.org.banks_per_pc == 32 and hbm.org.pcs == 32
    aim = load_dram("gddr6-aim")
    assert aim.org.capacity_bytes * 8 == 128 * 2**30
    assert aim.org.channels == 32 and aim.org.banks_per_pc == 16
    assert aim.timing.tck_s == 5e-10


def _yaml(**timing_changes):
    """The hbm3 preset as YAML with some timing values changed."""
    data = to_dict(load_dram("hbm3"))
    data["timing"].update(timing_changes)
    return yaml.safe_dump(data)


@pytest.mark.parametrize("change, message", [
    ({"tRCD": 0}, "timing.tRCD: must be >= 1, got 0"),
    ({"tRAS": 10}, "timing.tRAS: must be >= tRCD"),
    ({"tREFI": 100}, "timing.tREFI: must be > tRFC"),
    ({"tBL": 3, "tCCD_S": 3, "tCCD_L": 4}, "timing.tBL"),
])
def test_bad_timing_is_refused(change, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        parse_dram(_yaml(**change), "mine.yaml")


def test_banks_not_a_power_of_two_are_refused():
    data = to_dict(load_dram("hbm3"))
    data["org"]["banks_per_group"] = 3
    with pytest.raises(ConfigError, match="org.banks_per_group: must be a power of two"):
        parse_dram(yaml.safe_dump(data), "mine.yaml")


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown DRAM preset"):
        load_dram("hbm9")
