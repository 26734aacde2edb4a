"""Requests (what arrives) and sequences (a request's progress on one instance)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """One request: arrives at ``arrival_s`` (seconds) with ``prompt_tokens`` tokens and
    generates ``output_tokens`` tokens (the prefill produces the first, as in vLLM)."""

    id: int
    arrival_s: float
    prompt_tokens: int
    output_tokens: int

    def __post_init__(self) -> None:
        if self.prompt_tokens < 1 or self.output_tokens < 1:
            raise ValueError(f"request {self.id}: prompt_tokens and output_tokens must be >= 1, "
                             f"got {self.prompt_tokens}, {self.output_tokens}")


@dataclass(slots=True, eq=False)
class Sequence:
    """A request's progress: ``computed`` tokens in the KV cache of the instance holding it,
    ``generated`` output tokens so far. It needs ``prompt + generated - computed`` more
    tokens fed before it emits its next token: the whole prompt first (in chunks with chunked
    prefill), then one token per decode step; after a preemption by recompute ``computed``
    drops to 0 and the prompt and every generated token are fed again, emitting nothing twice.
    """

    request: Request
    computed: int = 0
    generated: int = 0
    first_token_s: float = -1.0
    last_token_s: float = -1.0
    finish_s: float = -1.0
    max_tbt_s: float = 0.0
    tbt_sum_s: float = 0.0
    preemptions: int = 0
    queued_s: float = 0.0           # when it last entered an instance's waiting queue
    queue_delay_s: float = 0.0      # total time spent waiting for admission
    transfer_s: float = 0.0         # KV-cache transfer time (disaggregation)
    moves: int = 0                  # times a policy moved it to another instance's queue
    # The instance holding this sequence's KV cache when not the one running it (Adrenaline's
    # offloaded attention, sim/serving/policies/adrenaline.py); None: the running one.
    kv_home: object = None
    tbts: list[float] = field(default_factory=list)

    @property
    def needed(self) -> int:
        """Tokens to feed before the next output token."""
        return self.request.prompt_tokens + self.generated - self.computed

    @property
    def done(self) -> bool:
        return self.generated >= self.request.output_tokens

    def emit(self, now: float) -> None:
        """Record one output token emitted at ``now`` (seconds)."""
        if self.generated == 0:
            self.first_token_s = now
        else:
            gap = now - self.last_token_s
            self.tbts.append(gap)
            self.tbt_sum_s += gap
            self.max_tbt_s = max(self.max_tbt_s, gap)
        self.last_token_s = now
        self.generated += 1
        if self.done:
            self.finish_s = now
