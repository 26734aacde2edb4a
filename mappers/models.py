"""Transformer models as data, loaded from Hugging Face ``config.json`` files.

Each supported architecture has a small parser that maps its config fields onto one
`ModelConfig`. Anything not recognised is refused with the list of what is supported: pdsim
never guesses the structure of a model it does not know.

Supported: Llama (``LlamaForCausalLM``), Qwen3 (``Qwen3ForCausalLM``: per-head RMSNorm on q and
k), BLOOM (``BloomForCausalLM``: ALiBi, LayerNorm, biases, GELU MLP, tied embeddings, an
embedding LayerNorm) and LLaDA (``LLaDAModelLM``: a bidirectional masked-diffusion LM with a
Llama-style block and OLMo-style config names).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
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
    tie_word_embeddings: bool = False
    embedding_norm: bool = False
    max_positions: int | None = None

    def __post_init__(self) -> None:
        for name in ("hidden_size", "num_layers", "num_heads", "num_kv_heads", "head_dim",
                     "intermediate_size", "vocab_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name}: must be a positive integer, got {value!r}")
        if self.num_heads % self.num_kv_heads:
            raise ConfigError(f"num_key_value_heads: must divide num_attention_heads "
                              f"({self.num_heads}), got {self.num_kv_heads}")
        if self.activation not in ("silu", "gelu"):
            raise ConfigError(f"activation: {self.activation!r} is not supported "
                              f"(allowed: silu, gelu)")

    @property
    def q_dim(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.head_dim

    def parameter_counts(self) -> dict[str, int]:
        """Parameters by part; ``total`` counts a tied embedding once."""
        h, i = self.hidden_size, self.intermediate_size
        norm = h * (2 if self.norm == "layernorm" else 1)
        b = self.linear_bias
        attention = (h * (self.q_dim + 2 * self.kv_dim) + self.q_dim * h
                     + (self.q_dim + 2 * self.kv_dim + h if b else 0))
        if self.qk_norm:
            attention += 2 * self.head_dim
        up = (2 if self.gated_mlp else 1) * i
        mlp = h * up + i * h + (up + h if b else 0)
        layer = attention + mlp + 2 * norm
        embedding = self.vocab_size * h
        counts = {
            "embedding": embedding + (norm if self.embedding_norm else 0),
            "layers": self.num_layers * layer,
            "per_layer": layer,
            "final_norm": norm,
            "lm_head": 0 if self.tie_word_embeddings else self.vocab_size * h,
        }
        counts["total"] = (counts["embedding"] + counts["layers"] + counts["final_norm"]
                           + counts["lm_head"])
        counts["non_embedding"] = counts["total"] - embedding
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


def _llama_like(cfg: Mapping[str, Any], name: str, where: str, *, qk_norm: bool) -> ModelConfig:
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
    return ModelConfig(
        name=name, architecture=cfg["architectures"][0], hidden_size=hidden,
        num_layers=_int(cfg, where, "num_hidden_layers"), num_heads=heads,
        num_kv_heads=_int(cfg, where, "num_key_value_heads", default=heads),
        head_dim=_int(cfg, where, "head_dim", default=None) or _head_dim(
            where, hidden, heads, "hidden_size", "num_attention_heads"),
        intermediate_size=_int(cfg, where, "intermediate_size"),
        vocab_size=_int(cfg, where, "vocab_size"), gated_mlp=True, activation="silu",
        norm="rmsnorm", position="rope", causal=True, qk_norm=qk_norm,
        tie_word_embeddings=_bool(cfg, where, "tie_word_embeddings", default=False),
        max_positions=_int(cfg, where, "max_position_embeddings", default=None))


def _llama(cfg: Mapping[str, Any], name: str, where: str) -> ModelConfig:
    return _llama_like(cfg, name, where, qk_norm=False)


def _qwen3(cfg: Mapping[str, Any], name: str, where: str) -> ModelConfig:
    return _llama_like(cfg, name, where, qk_norm=True)


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
    "Qwen3ForCausalLM": _qwen3,
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
