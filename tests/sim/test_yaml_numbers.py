"""Numbers in pdsim's YAML inputs (`sim.schema.load_yaml`): YAML 1.2 float syntax is a float
(PyYAML alone, YAML 1.1, reads ``1e9`` as a string), quoted text stays text, a key given
twice is still refused, and every YAML reader in the package goes through that one loader."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import yaml

from sim.errors import ConfigError
from sim.schema import load_yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("text, value", [
    ("1e9", 1_000_000_000.0),
    ("2.5e10", 25_000_000_000.0),
    ("2.5e+10", 25_000_000_000.0),      # the spelling PyYAML needed: still read
    ("-3E-2", -0.03),
    ("+1E+9", 1_000_000_000.0),
    (".5", 0.5),
    ("-.5", -0.5),
    ("+.5e3", 500.0),
    ("1.", 1.0),
    ("1_000", 1000),                     # YAML 1.1's digit separator, kept: an integer
    ("1_000.5", 1000.5),
    ("12_3e4", 1_230_000.0),
    ("1000", 1000),                      # no dot, no exponent: an integer, not a float
    ("0x10", 16),
    ("-7", -7),
    (".inf", math.inf),
    ("-.inf", -math.inf),
])
def test_number_spellings(text, value):
    got = load_yaml(f"x: {text}\n", "t.yaml")["x"]
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("text, value", [
    ('"1e9"', "1e9"),                    # quoted: the user asked for text
    ("'2.5e10'", "2.5e10"),
    ("1.2.3", "1.2.3"),                  # a version
    ("1e", "1e"),
    ("e9", "e9"),
    ("1e9x", "1e9x"),
    (".", "."),
    ("1e9 GB/s", "1e9 GB/s"),
])
def test_text_stays_text(text, value):
    assert load_yaml(f"x: {text}\n", "t.yaml")["x"] == value


def test_nan_is_a_float():
    assert math.isnan(load_yaml("x: .nan\n", "t.yaml")["x"])


def test_plain_pyyaml_is_left_alone():
    # The loader has its own resolver table: yaml.safe_load keeps YAML 1.1 for everyone else.
    load_yaml("x: 1e9\n", "t.yaml")
    assert yaml.safe_load("x: 1e9\n") == {"x": "1e9"}


def test_keys_given_twice_still_refused_and_errors_still_one_line():
    with pytest.raises(ConfigError, match=r"^t.yaml: malformed YAML at line 2, column 1: "
                                          r"key 'a' given twice$"):
        load_yaml("a: 1e9\na: 2\n", "t.yaml")
    with pytest.raises(ConfigError, match="line 2.*key 1000000000.0 given twice"):
        load_yaml("1e9: a\n1.0e+9: b\n", "t.yaml")  # one number, two spellings
    with pytest.raises(ConfigError, match=r"^t.yaml: malformed YAML at line 2"):
        load_yaml("a: [1e9\n", "t.yaml")


def test_hardware_file_with_2_5e10(tmp_path):
    from sim.presets import load_hardware

    text = load_hardware("h100").text
    assert "bandwidth_bytes_per_s: 450e9" in text
    path = tmp_path / "hw.yaml"
    path.write_text(text.replace("bandwidth_bytes_per_s: 450e9", "bandwidth_bytes_per_s: 2.5e10"))
    system = load_hardware(str(path)).system
    assert system.interconnect.bandwidth_bytes_per_s == 25_000_000_000.0


def test_cluster_file_with_2_5e10(tmp_path):
    from sim.serving.cluster import read_cluster

    path = tmp_path / "c.yaml"
    path.write_text("model: llama2-7b\ninstances: [{hardware: h100}]\n"
                    "link: {bandwidth_bytes_per_s: 2.5e10}\n"
                    "training: {batch: 1, seq: 8, reuse: activations, pcie_bytes_per_s: 2.5e10}\n")
    cluster = read_cluster(str(path))
    assert cluster.training.pcie_bytes_per_s == 25_000_000_000.0
    assert cluster.link.bandwidth_bytes_per_s == 25_000_000_000.0


def test_net_link_file_with_1_25e8(tmp_path):
    from sim.edge import load_net

    path = tmp_path / "lan.yaml"
    path.write_text("name: lan\nbandwidth_bytes_per_s: 1.25e8\nlatency_s: 5e-4\n")
    link = load_net(str(path))
    assert (link.bandwidth_bytes_per_s, link.latency_s) == (125_000_000.0, 0.0005)


def test_quant_scheme_goes_through_the_one_loader():
    from mappers.schemes import parse_scheme

    with pytest.raises(ConfigError, match="key 'kv' given twice"):
        parse_scheme("weight: int4\nactivation: fp8\nkv: int4\nkv: fp8\n")


def test_every_yaml_reader_uses_load_yaml():
    # PyYAML's own loaders read 1e9 as text and keep the last of two equal keys: only
    # sim/schema.py may call them.
    calls = re.compile(r"yaml\.(safe_load|load|full_load|unsafe_load)\(")
    users = sorted(str(p.relative_to(ROOT)) for folder in ("sim", "mappers")
                   for p in (ROOT / folder).rglob("*.py") if calls.search(p.read_text()))
    assert users == ["sim/schema.py"]
