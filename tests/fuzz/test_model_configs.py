"""Fuzz the model configs: every shipped Hugging Face ``config.json``, mutated
(`tests.fuzz.mutate`), given to ``pdsim run --model``.

Property: `tests.fuzz.harness.check`.
"""

from __future__ import annotations

import tempfile
from importlib import resources
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz.harness import FUZZ, budget, check, invoke
from tests.fuzz.mutate import mutated

CONFIGS = {p.name: p.read_text() for p in sorted((resources.files("mappers") / "configs")
                                                 .iterdir()) if p.name.endswith(".json")}


@settings(FUZZ, max_examples=budget(110))
@given(config=st.sampled_from(sorted(CONFIGS)).flatmap(lambda n: mutated(CONFIGS[n], "json")),
       hw=st.sampled_from(("h100", "halo-package", "cent")),
       detail=st.sampled_from(("roofline", "roofline", "tile")),
       no_capacity_check=st.booleans())
def test_model_configs(config, hw, detail, no_capacity_check):
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "config.json").write_bytes(config)
        argv = ["run", "--model", "config.json", "--hw", hw, "--detail", detail, "--prompt",
                "16", "--gen", "3", "--decode-sample", "2", "--json", "-o", "out/t.h5"]
        argv += ["--no-capacity-check"] if no_capacity_check else []
        check(invoke(argv, Path(folder)), outputs=frozenset({"out", "out/t.h5"}))
