"""HAT's U-shaped split (Xie et al., arXiv 2503.18989): which layers a device holds, what its
draft model is, what it must store, and the bytes each device-cloud crossing carries.

A model of ``L`` decoder layers is cut in three: the device holds the embedding, the first
``k`` layers, the last ``m`` layers and the LM head; the cloud holds the middle ``L - k - m``.
The device also holds an *adapter* of ``a`` decoder-layer-shaped blocks which, stacked between
the first ``k`` and last ``m`` layers, makes the device's draft model (embedding, ``k`` layers,
adapter, ``m`` layers, LM head): a small language model that shares the target's weights at
both ends. The first ``k`` layers are the target's own, so their KV cache serves draft and
target alike; the last ``m`` see different inputs in the draft (the adapter's output) and the
target (the cloud's), so the device keeps two KV caches for them.

`plan_ushape` chooses ``(k, m)`` by exhaustive search under the device's memory (the space is
``O(L^2)``), with a cost the simulator supplies. Pure: it knows no unit model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from sim.dtypes import nbytes
from sim.errors import ConfigError

#: A sampled token id (int32), what cloud-only serving sends instead of hidden states.
TOKEN_ID_BYTES = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class UShape:
    """A U-shaped split of ``num_layers`` layers: ``first`` (k) and ``last`` (m) layers on the
    device, ``adapter`` adapter blocks (decoder-layer-shaped) in the device's draft."""

    num_layers: int
    first: int
    last: int
    adapter: int = 1

    def __post_init__(self) -> None:
        if self.first < 1 or self.last < 1:
            raise ConfigError(f"--k/--m: the device holds at least one first and one last "
                              f"layer, got k={self.first}, m={self.last}")
        if self.first + self.last >= self.num_layers:
            raise ConfigError(f"--k/--m: k + m must leave the cloud at least one of the "
                              f"model's {self.num_layers} layers, got k={self.first}, "
                              f"m={self.last}")
        if self.adapter < 0:
            raise ConfigError(f"--adapter-layers: must be >= 0, got {self.adapter}")

    @property
    def middle(self) -> int:
        """Layers the cloud runs."""
        return self.num_layers - self.first - self.last

    @property
    def draft_layers(self) -> int:
        """Decoder-layer blocks of the device's draft model: k + adapter + m."""
        return self.first + self.adapter + self.last

    def ranges(self) -> dict[str, tuple[tuple[int, int], ...]]:
        """Inclusive layer ranges of ``device`` and ``cloud`` (as `mappers.edge.Holding`)."""
        lo, hi = self.first, self.num_layers - self.last
        return {"device": ((0, lo - 1), (hi, self.num_layers - 1)),
                "cloud": ((lo, hi - 1),)}


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerBytes:
    """Bytes of one model's parts at a precision: one decoder layer's weights, the embedding,
    the final norm + LM head, and one token's KV cache in one layer."""

    layer: int
    embedding: int
    head: int
    kv_token_layer: int


def layer_bytes(model, precision) -> LayerBytes:
    """`LayerBytes` of ``model`` (a `mappers.models.ModelConfig`) at ``precision``."""
    c = model.parameter_counts()
    return LayerBytes(layer=nbytes(c["per_layer"], precision.weight),
                      embedding=nbytes(c["embedding"], precision.weight),
                      head=nbytes(c["final_norm"] + (c["lm_head"] or c["embedding"]),
                                  precision.weight),
                      kv_token_layer=nbytes(2 * model.num_kv_heads * model.head_dim,
                                            precision.kv))


def device_bytes(split: UShape, sizes: LayerBytes, tokens: int) -> int:
    """Bytes the device stores for a ``tokens``-token sequence: embedding, LM head, its k + m
    layers and the adapter's weights; the KV cache of the k shared layers, of the adapter and
    of the last m layers twice (the draft's and the target's)."""
    weights = (sizes.embedding + sizes.head
               + (split.first + split.last + split.adapter) * sizes.layer)
    kv_layers = split.first + split.adapter + 2 * split.last
    return weights + kv_layers * tokens * sizes.kv_token_layer


def cloud_bytes(split: UShape, sizes: LayerBytes, tokens: int) -> int:
    """Bytes the cloud stores for one ``tokens``-token sequence on its middle layers."""
    return split.middle * (sizes.layer + tokens * sizes.kv_token_layer)


def verify_positions(gamma: int) -> int:
    """Positions one verify step sends through the cloud: the round's input token (the last
    verified one) and the ``gamma`` drafts (Leviathan et al. 2023: gamma + 1 target rows)."""
    return gamma + 1


def plan_ushape(num_layers: int, sizes: LayerBytes, capacity_bytes: int, tokens: int,
                cost: Callable[[int, int], float], adapter: int = 1,
                candidates: Sequence[tuple[int, int]] | None = None) -> tuple[UShape, float]:
    """The ``(k, m)`` split of least ``cost(k, m)`` among those whose device storage for a
    ``tokens``-token sequence fits ``capacity_bytes`` (`device_bytes`); ties go to more layers
    on the device (more of the prompt stays private), then to larger k. ``candidates``
    restricts the search (default: every k, m >= 1 with k + m < num_layers). `ConfigError` if
    none fits."""
    pairs = candidates if candidates is not None else [
        (k, m) for k in range(1, num_layers) for m in range(1, num_layers - k)]
    best: tuple[float, int, int] | None = None
    for k, m in pairs:
        split = UShape(num_layers=num_layers, first=k, last=m, adapter=adapter)
        if device_bytes(split, sizes, tokens) > capacity_bytes:
            continue
        key = (cost(k, m), -(k + m), -k)
        if best is None or key < best:
            best = key
    if best is None:
        raise ConfigError(f"devices: no U-shaped split of {num_layers} layers fits the "
                          f"device's {capacity_bytes / 1e9:.2f} GB (embedding, LM head, one "
                          f"first and one last layer, the adapter and their KV cache)")
    cost_s, neg_layers, neg_k = best
    k = -neg_k
    return UShape(num_layers=num_layers, first=k, last=-neg_layers - k, adapter=adapter), cost_s
