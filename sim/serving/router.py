"""Routers (the global scheduler), registered by name: pick the instance a request (or a
prefilled sequence, under disaggregation) goes to."""

from __future__ import annotations

from typing import Callable


def round_robin(instances: list, counter: list[int]):
    """Instances in turn; ``counter`` is the router's own (per simulation) turn count."""
    inst = instances[counter[0] % len(instances)]
    counter[0] += 1
    return inst


def least_loaded(instances: list, counter: list[int]):
    """The instance with the fewest sequences waiting, running or on their way to it (KV
    caches in flight; first on ties)."""
    return min(instances, key=lambda i: i.load + i.incoming)


ROUTERS: dict[str, Callable] = {"round_robin": round_robin, "least_loaded": least_loaded}
