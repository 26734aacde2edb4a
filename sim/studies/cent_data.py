"""CENT's own figures, copied from its public artifact (GitHub ``Yufeng98/CENT`` at commit
``8c79786``) and REFERENCE.md, for `sim.studies.cent`. Nothing here is computed by pdsim.

Mappings: ``"tp"`` is CENT's tensor-parallel mapping (``Pipeline parallelism`` 1, ``Tensor
parallelism`` = all devices; its headline), ``"pp"`` its pipelined one (one device per stage,
``Pipeline parallelism`` = devices, ``Tensor parallelism`` 1). Both at batch 1 per request,
512 prompt + 3584 generated tokens (``Seqlen`` 4096).
"""

from __future__ import annotations

#: Model, device count (REFERENCE.md and ``cent_simulation/simulation.sh``).
MODELS = (("llama2-7b", 8), ("llama2-13b", 20), ("llama2-70b", 32))
MAPPINGS = ("tp", "pp")

#: REFERENCE.md: batch-1 latency speed-up over CENT's GPU baseline.
PUBLISHED_SPEEDUP = {"llama2-7b": 6.32, "llama2-13b": 4.65, "llama2-70b": 3.18}

#: ``data/GPU_latency.csv``: the GPU baseline's end-to-end latency (s), the denominator of the
#: published speed-ups (42.969 / 6.796 = 6.32, 51.468 / 11.065 = 4.65, 127.156 / 39.99 = 3.18).
GPU_BASELINE_S = {"llama2-7b": 42.969, "llama2-13b": 51.468, "llama2-70b": 127.156}

#: ``cent_simulation/processed_results.csv``: CENT's simulator, seconds per request
#: (``end2end``, ``prefill`` and ``decoding`` rows' ``Total Latency (s)``).
CENT_SIM_S = {
    ("llama2-7b", "tp"): {"e2e": 6.795989644666666, "prefill": 0.5339428655833333,
                          "decode": 6.262046779083334},
    ("llama2-7b", "pp"): {"e2e": 12.948760814666668, "prefill": 1.1993613098333331,
                          "decode": 11.749399504833336},
    ("llama2-13b", "tp"): {"e2e": 11.065036278142856, "prefill": 0.862097854767857,
                           "decode": 10.202938423375},
    ("llama2-13b", "pp"): {"e2e": 22.66728677228572, "prefill": 2.150382366535715,
                           "decode": 20.516904405750008},
    ("llama2-70b", "tp"): {"e2e": 39.98553380800001, "prefill": 2.9559926860000005,
                           "decode": 37.02954112200001},
    ("llama2-70b", "pp"): {"e2e": 99.6570121045, "prefill": 9.940692593062504,
                           "decode": 89.7163195114375},
}

#: ``cent_simulation/simulation_results.csv``: one transformer block's decode latency (ms) at a
#: KV length of 512 and 4096 tokens, by CENT's parts: ``PIM latency`` (AiM commands: GEMVs,
#: scores, values, the moves of vectors into and out of the banks), ``CXL latency``
#: (device-to-device), ``Acc latency`` (the near-memory accelerators: softmax, norms, RoPE,
#: SiLU), ``TransformerBlock latency`` (their sum).
CENT_BLOCK_MS = {
    ("llama2-7b", "tp"): {512: (0.021547, 0.0042958331044514, 0.00365),
                          4096: (0.047729, 0.0042958331044514, 0.0159699999999999)},
    ("llama2-7b", "pp"): {512: (0.0616085, 0.0032527518208821, 0.00365),
                          4096: (0.1004465, 0.0032527518208821, 0.0159699999999999)},
    ("llama2-13b", "tp"): {512: (0.026613, 0.0094062218148367, 0.00455525),
                           4096: (0.062079, 0.0094062218148367, 0.01995525)},
    ("llama2-13b", "pp"): {512: (0.0915625, 0.0056851889910016, 0.00455525),
                           4096: (0.1428485, 0.0056851889910016, 0.01995525)},
    ("llama2-70b", "tp"): {512: (0.0441925, 0.0245713464355468, 0.005927),
                           4096: (0.119255, 0.0245713464355468, 0.030567)},
    ("llama2-70b", "pp"): {512: (0.2248745, 0.0130229465103149, 0.005927),
                           4096: (0.323093, 0.0130229465103149, 0.030567)},
}
