"""Transformer models as data, loaded from Hugging Face ``config.json`` files.

Each supported architecture has a small parser that maps its config fields onto one
`ModelConfig`. Anything not recognised is refused with the list of what is supported: pdsim
never guesses the structure of a model it does not know.

Supported: Llama (``LlamaForCausalLM``), Mistral (``MistralForCausalLM``: sliding-window
attention), Qwen2/2.5 (``Qwen2ForCausalLM``: biases on the QKV projection), Qwen3
(``Qwen3ForCausalLM``: per-head RMSNorm on q and k), the mixture-of-experts decoders Mixtral
(``MixtralForCausalLM``), Qwen3-MoE (``Qwen3MoeForCausalLM``) and Qwen2-MoE
(``Qwen2MoeForCausalLM``: Qwen1.5-MoE, Qwen2-57B-A14B; QKV biases and a gated shared
expert): a router and top-k routed experts in place of the MLP (`ModelConfig.num_experts`),
BLOOM (``BloomForCausalLM``: ALiBi, LayerNorm, biases, GELU MLP, tied embeddings, an
embedding LayerNorm) and LLaDA
(``LLaDAModelLM``: a bidirectional masked-diffusion LM with a Llama-style block and OLMo-style
config names).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping

from sim.errors import ConfigError
from sim.shipped import Shelf


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelConfig:
    """The structure of a decoder-style transformer, enough to count parameters and FLOPs."""

    name: str
    architecture: str
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    gated_mlp: bool            # SwiGLU-style gate and up projections, else a plain up projection
    activation: str            # "silu" or "gelu"
    norm: str                  # "rmsnorm" (weight) or "layernorm" (weight and bias)
    position: str              # "rope" or "alibi"
    causal: bool               # False for bidirectional (diffusion) LMs
    qk_norm: bool = False      # per-head RMSNorm on queries and keys (Qwen3)
    linear_bias: bool = False  # biases on every attention and MLP projection
    qkv_bias: bool = False     # biases on the QKV projection only (Qwen2)
    tie_word_embeddings: bool = False
    embedding_norm: bool = False
    max_positions: int | None = None
    sliding_window: int | None = None  # each query sees the last W keys (itself included)
    # Mixture of experts (0 experts: a dense MLP of ``intermediate_size``). Every layer's MLP
    # is a router GEMM (hidden -> experts, no bias) and ``experts`` gated MLPs of
    # ``expert_intermediate_size``, of which each token uses ``experts_per_token``.
    num_experts: int = 0
    experts_per_token: int = 0
    expert_intermediate_size: int = 0
    # Measured routing: the probability that a token selects each expert (sums to
    # ``experts_per_token``); None for uniform routing (`expected_experts`).
    expert_load: tuple[float, ...] | None = None
    # A shared expert (Qwen2-MoE): a gated MLP of this width that every token uses, beside the
    # routed experts (0: none); ``shared_expert_gate``: its output is scaled by
    # sigmoid(hidden -> 1), a one-column GEMM.
    shared_expert_intermediate_size: int = 0
    shared_expert_gate: bool = False

    def __post_init__(self) -> None:
        for name in ("hidden_size", "num_layers", "num_heads", "num_kv_heads", "head_dim",
                     "intermediate_size", "vocab_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name}: must be a positive integer, got {value!r}")
        if self.num_heads % self.num_kv_heads:
            raise ConfigError(f"num_key_value_heads: must divide num_attention_heads "
                              f"({self.num_heads}), got {self.num_kv_heads}")
        if self.sliding_window is not None and (not isinstance(self.sliding_window, int)
                                                or self.sliding_window < 1):
            raise ConfigError(f"sliding_window: must be a positive integer or null, got "
                              f"{self.sliding_window!r}")
        if self.num_experts:
            if not 1 <= self.experts_per_token <= self.num_experts:
                raise ConfigError(f"num_experts_per_tok: must be between 1 and the "
                                  f"{self.num_experts} experts, got {self.experts_per_token}")
            if self.expert_intermediate_size < 1:
                raise ConfigError(f"moe_intermediate_size: must be a positive integer, got "
                                  f"{self.expert_intermediate_size!r}")
        if (self.shared_expert_intermediate_size or self.shared_expert_gate) and not self.moe:
            raise ConfigError("shared_expert_intermediate_size: a shared expert needs routed "
                              "experts (num_experts > 0)")
        if self.expert_load is not None:
            load = self.expert_load
            if (len(load) != self.num_experts or any(not 0 <= p <= 1 for p in load)
                    or abs(sum(load) - self.experts_per_token) > 1e-6 * self.num_experts):
                raise ConfigError(f"expert_load: needs one selection probability in [0, 1] "
                                  f"per expert ({self.num_experts}) summing to "
                                  f"experts_per_token ({self.experts_per_token})")
        if self.activation not in ("silu", "gelu"):
            raise ConfigError(f"activation: {self.activation!r} is not supported "
                              f"(allowed: silu, gelu)")

    @property
    def q_dim(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.head_dim

    @property
    def moe(self) -> bool:
        return self.num_experts > 0

    def expected_experts(self, tokens: int) -> float:
        """Expected number of distinct experts that ``tokens`` tokens route to in one layer:
        ``sum_e 1 - (1 - p_e)^tokens`` over the experts' selection probabilities ``p_e``
        (uniform routing: ``p_e = k / E``, so ``E (1 - (1 - k/E)^tokens)``). Each token's
        choices are treated as independent across experts (exact for k = 1)."""
        if not self.moe:
            raise ValueError(f"expected_experts: {self.name} has no experts")
        if self.expert_load is None:
            e, k = self.num_experts, self.experts_per_token
            return e * -math.expm1(tokens * math.log1p(-k / e)) if k < e else float(e)
        return sum(1.0 if p >= 1 else -math.expm1(tokens * math.log1p(-p))
                   for p in self.expert_load)

    def parameter_counts(self) -> dict[str, int]:
        """Parameters by part; ``total`` counts a tied embedding once; ``active`` counts what
        one token reads (only ``experts_per_token`` of a MoE layer's experts)."""
        h, i = self.hidden_size, self.intermediate_size
        norm = h * (2 if self.norm == "layernorm" else 1)
        b = self.linear_bias
        qkv = self.q_dim + 2 * self.kv_dim
        attention = h * qkv + self.q_dim * h + (qkv + h if b else 0)
        if self.qkv_bias and not b:
            attention += qkv
        if self.qk_norm:
            attention += 2 * self.head_dim
        up = (2 if self.gated_mlp else 1) * i
        expert = 0
        if self.moe:  # router + experts (gated, no biases) + the shared expert and its gate
            expert = 3 * h * self.expert_intermediate_size
            mlp = (h * self.num_experts + self.num_experts * expert
                   + 3 * h * self.shared_expert_intermediate_size
                   + (h if self.shared_expert_gate else 0))
        else:
            mlp = h * up + i * h + (up + h if b else 0)
        layer = attention + mlp + 2 * norm
        embedding = self.vocab_size * h
        counts = {
            "embedding": embedding + (norm if self.embedding_norm else 0),
            "layers": self.num_layers * layer,
            "per_layer": layer,
            "per_layer_norms": 2 * norm + (2 * self.head_dim if self.qk_norm else 0),
            "per_expert": expert,
            "final_norm": norm,
            "lm_head": 0 if self.tie_word_embeddings else self.vocab_size * h,
        }
        counts["total"] = (counts["embedding"] + counts["layers"] + counts["final_norm"]
                           + counts["lm_head"])
        counts["non_embedding"] = counts["total"] - embedding
        idle = (self.num_experts - self.experts_per_token) * expert if self.moe else 0
        counts["active"] = counts["total"] - self.num_layers * idle
        return counts


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A parsed model with the exact config text it came from (stored in traces)."""

    config: ModelConfig
    text: str
    source: str


def _get(cfg: Mapping[str, Any], where: str, *names: str, default: Any = ...) -> Any:
    for name in names:
        if name in cfg and cfg[name] is not None:
            return cfg[name]
    if default is ...:
        raise ConfigError(f"{where}: missing field {names[0]!r}")
    return default


#: Largest size field accepted (2**31: products of a few such sizes stay int64 counts).
MAX_SIZE = 2**31


def _int(cfg: Mapping[str, Any], where: str, *names: str, default: Any = ...) -> Any:
    value = _get(cfg, where, *names, default=default)
    if value is not default and (not isinstance(value, int) or isinstance(value, bool)
                                 or not 1 <= value <= MAX_SIZE):
        shown = f"{value:.3g}" if isinstance(value, int) and value > MAX_SIZE else repr(value)
        raise ConfigError(f"{where}: field {names[0]!r} must be a positive integer, got "
                          f"{shown} (at most {MAX_SIZE})")
    return value


def _bool(cfg: Mapping[str, Any], where: str, *names: str, default: bool) -> bool:
    """A JSON boolean (``true``/``false``); the string "false" is refused, not read as
    true."""
    value = _get(cfg, where, *names, default=default)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: field {names[0]!r} must be true or false (a JSON "
                          f"boolean), got {value!r}")
    return value


def _head_dim(where: str, hidden: int, heads: int, hidden_field: str, heads_field: str) -> int:
    """``hidden / heads``, refused when not whole (Hugging Face refuses it too)."""
    if hidden % heads:
        raise ConfigError(f"{where}: field {hidden_field!r} ({hidden}) must be divisible by "
                          f"{heads_field!r} ({heads})")
    return hidden // heads


def _llama_like(cfg: Mapping[str, Any], name: str, where: str, *, qk_norm: bool = False,
                qkv_bias: bool = False, window: bool = False, moe: tuple[str, str] | None = None,
                ) -> ModelConfig:
    """A Llama-style block. ``window``: the family reads ``sliding_window``; ``moe``: the
    config names of the expert count and the expert MLP width."""
    heads = _int(cfg, where, "num_attention_heads")
    hidden = _int(cfg, where, "hidden_size")
    act = _get(cfg, where, "hidden_act", default="silu")
    if act not in ("silu", "swish"):
        raise ConfigError(f"{where}: hidden_act {act!r} is not supported for this "
                          f"architecture (allowed: silu)")
    if _bool(cfg, where, "attention_bias", default=False) or _bool(cfg, where, "mlp_bias",
                                                                   default=False):
        raise ConfigError(f"{where}: attention_bias/mlp_bias true is not supported for "
                          f"this architecture (allowed: false)")
    sliding = None
    if window:
        sliding = _int(cfg, where, "sliding_window", default=None)
    elif _bool(cfg, where, "use_sliding_window", default=False):  # Qwen2/3: SWA on upper layers
        raise ConfigError(f"{where}: use_sliding_window true is not supported for this "
                          f"architecture (allowed: false)")
    elif "use_sliding_window" not in cfg and cfg.get("sliding_window") is not None:
        raise ConfigError(f"{where}: sliding_window is not supported for "
                          f"{cfg['architectures'][0]} (allowed: null; Mistral-style models "
                          f"are MistralForCausalLM)")
    experts = {}
    if moe is not None:
        count, width = moe
        if _get(cfg, where, "decoder_sparse_step", default=1) != 1:
            raise ConfigError(f"{where}: decoder_sparse_step {cfg['decoder_sparse_step']!r} is "
                              f"not supported (allowed: 1, every layer a MoE layer)")
        if _get(cfg, where, "mlp_only_layers", default=[]):
            raise ConfigError(f"{where}: mlp_only_layers is not supported (allowed: [])")
        experts = dict(num_experts=_int(cfg, where, count),
                       experts_per_token=_int(cfg, where, "num_experts_per_tok"),
                       expert_intermediate_size=_int(cfg, where, width))
    return ModelConfig(
        name=name, architecture=cfg["architectures"][0], hidden_size=hidden,
        num_layers=_int(cfg, where, "num_hidden_layers"), num_heads=heads,
        num_kv_heads=_int(cfg, where, "num_key_value_heads", default=heads),
        head_dim=_int(cfg, where, "head_dim", default=None) or _head_dim(
            where, hidden, heads, "hidden_size", "num_attention_heads"),
        intermediate_size=_int(cfg, where, "intermediate_size"),
        vocab_size=_int(cfg, where, "vocab_size"), gated_mlp=True, activation="silu",
        norm="rmsnorm", position="rope", causal=True, qk_norm=qk_norm, qkv_bias=qkv_bias,
        tie_word_embeddings=_bool(cfg, where, "tie_word_embeddings", default=False),
        max_positions=_int(cfg, where, "max_position_embeddings", default=None),
        sliding_window=sliding, **experts)


def _llama(cfg: Mapping[str, Any], name: str, where: str) -> ModelConfig:
    return _llama_like(cfg, name, where)


def _mistral(cfg: Mapping[str, Any], name: str, where: str) -> ModelConfig:
    return _llama_like(cfg, name, where, window=True)


def _qwen2(cfg: Mapping[str, Any], name: str, where: str) -> ModelConfig:
    return _llama_like(cfg, name, where, qkv_bias=True)


def _qwen3(cfg: Mapping[str, Any], name: str, where: str) -> ModelConfig:
    return _llama_like(cfg, name, where, qk_norm=True)


def _mixtral(cfg: Mapping[str, Any], name: str, where: str) -> ModelConfig:
    return _llama_like(cfg, name, where, window=True,
                       moe=("num_local_experts", "intermediate_size"))


def _qwen3_moe(cfg: Mapping[str, Any], name: str, where: str) -> ModelConfig:
    return _llama_like(cfg, name, where, qk_norm=True,
                       moe=("num_experts", "moe_intermediate_size"))


def _qwen2_moe(cfg: Mapping[str, Any], name: str, where: str) -> ModelConfig:
    model = _llama_like(cfg, name, where, qkv_bias=True,
                        moe=("num_experts", "moe_intermediate_size"))
    return replace(model, shared_expert_gate=True, shared_expert_intermediate_size=_int(
        cfg, where, "shared_expert_intermediate_size"))


def _bloom(cfg: Mapping[str, Any], name: str, where: str) -> ModelConfig:
    hidden = _int(cfg, where, "hidden_size", "n_embed")
    heads = _int(cfg, where, "n_head", "num_attention_heads")
    return ModelConfig(
        name=name, architecture=cfg["architectures"][0], hidden_size=hidden,
        num_layers=_int(cfg, where, "n_layer", "num_hidden_layers"), num_heads=heads,
        num_kv_heads=heads, head_dim=_head_dim(where, hidden, heads, "n_embed", "n_head"),
        intermediate_size=4 * hidden,
        vocab_size=_int(cfg, where, "vocab_size"), gated_mlp=False, activation="gelu",
        norm="layernorm", position="alibi", causal=True, linear_bias=True,
        tie_word_embeddings=True, embedding_norm=True,
        max_positions=_int(cfg, where, "seq_length", default=None))


def _llada(cfg: Mapping[str, Any], name: str, where: str) -> ModelConfig:
    hidden = _int(cfg, where, "d_model")
    heads = _int(cfg, where, "n_heads")
    if _get(cfg, where, "block_type", default="llama") != "llama":
        raise ConfigError(f"{where}: LLaDA block_type {cfg['block_type']!r} is not supported "
                          f"(allowed: llama)")
    for flag in ("include_bias", "include_qkv_bias", "alibi"):
        if _bool(cfg, where, flag, default=False):
            raise ConfigError(f"{where}: {flag} true is not supported for LLaDA "
                              f"(allowed: false)")
    mlp = _int(cfg, where, "mlp_hidden_size", default=None)
    return ModelConfig(
        name=name, architecture=cfg["architectures"][0], hidden_size=hidden,
        num_layers=_int(cfg, where, "n_layers"), num_heads=heads,
        num_kv_heads=_int(cfg, where, "n_kv_heads", default=heads),
        head_dim=_head_dim(where, hidden, heads, "d_model", "n_heads"),
        intermediate_size=mlp if mlp is not None else _int(cfg, where, "mlp_ratio") * hidden,
        vocab_size=_int(cfg, where, "embedding_size", "vocab_size"), gated_mlp=True,
        activation="silu", norm="rmsnorm", position="rope", causal=False,
        tie_word_embeddings=_bool(cfg, where, "weight_tying", default=False),
        max_positions=_int(cfg, where, "max_sequence_length", default=None))


_PARSERS: dict[str, Callable[[Mapping[str, Any], str, str], ModelConfig]] = {
    "LlamaForCausalLM": _llama,
    "MistralForCausalLM": _mistral,
    "Qwen2ForCausalLM": _qwen2,
    "Qwen3ForCausalLM": _qwen3,
    "MixtralForCausalLM": _mixtral,
    "Qwen3MoeForCausalLM": _qwen3_moe,
    "Qwen2MoeForCausalLM": _qwen2_moe,
    "BloomForCausalLM": _bloom,
    "BloomModel": _bloom,
    "LLaDAModelLM": _llada,
}


CONFIGS = Shelf(package="mappers", folder="configs", suffixes=(".json",), flag="--model",
                noun="model")


def model_names() -> tuple[str, ...]:
    """Names of the shipped model configs, sorted."""
    return CONFIGS.names()


def load_model(spec: str) -> ModelSpec:
    """Load a shipped config by name (``llama2-7b``) or any HF ``config.json`` by path.
    A file called ``config.json`` takes the name of its folder, as in a HF checkout."""
    text, path = CONFIGS.read(spec)
    if path is None:
        return ModelSpec(config=parse_model(text, spec, spec), text=text, source=spec)
    name = path.parent.name if path.name == "config.json" else path.stem
    return ModelSpec(config=parse_model(text, name or path.stem, spec), text=text,
                     source=str(path))


def with_routing(model: ModelConfig, text: str, where: str = "--routing") -> ModelConfig:
    """``model`` with a measured routing: ``text`` is JSON ``{"expert_counts": [c_0, ...]}``,
    the tokens routed to each expert over a sample (each token counted once per expert it
    picks), so expert ``i`` is picked with probability ``k c_i / sum(c)``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: malformed JSON at line {exc.lineno}: {exc.msg}") from None
    counts = data.get("expert_counts") if isinstance(data, dict) else None
    if not model.moe:
        raise ConfigError(f"{where}: {model.name} has no experts (routing needs a "
                          f"mixture-of-experts model)")
    if (not isinstance(counts, list) or len(counts) != model.num_experts
            or any(isinstance(c, bool) or not isinstance(c, (int, float)) or c < 0
                   for c in counts) or not sum(counts)):
        raise ConfigError(f"{where}: expert_counts must be a list of {model.num_experts} "
                          f"non-negative numbers, not all zero")
    k, total = model.experts_per_token, float(sum(counts))
    load = tuple(k * c / total for c in counts)
    if max(load) > 1 + 1e-9:
        raise ConfigError(f"{where}: expert_counts give expert {load.index(max(load))} a "
                          f"share above 1/{k} of the routed tokens (each token picks an "
                          f"expert at most once)")
    return replace(model, expert_load=tuple(min(p, 1.0) for p in load))


def parse_model(text: str, name: str, where: str) -> ModelConfig:
    """Parse HF config.json text into a `ModelConfig`; errors name ``where``."""
    try:
        cfg = json.loads(text)
    except RecursionError:
        raise ConfigError(f"{where}: nested too deeply to parse") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: malformed JSON at line {exc.lineno}, column {exc.colno}: "
                          f"{exc.msg}") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{where}: expected a JSON object")
    archs = cfg.get("architectures")
    if not (isinstance(archs, list) and archs and isinstance(archs[0], str)):
        raise ConfigError(f"{where}: missing field 'architectures' "
                          f"(supported: {', '.join(_PARSERS)})")
    if archs[0] not in _PARSERS:
        raise ConfigError(f"{where}: architecture {archs[0]!r} is not supported "
                          f"(supported: {', '.join(_PARSERS)})")
    try:
        return _PARSERS[archs[0]](cfg, name, where)
    except ConfigError as exc:
        msg = str(exc)
        raise ConfigError(msg if msg.startswith(where) else f"{where}: {msg}") from None
