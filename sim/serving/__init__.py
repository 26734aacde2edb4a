"""Serving simulator: requests from a trace, a router, instances running ragged-batch
iterations under a batching policy, advanced from iteration end to iteration end
(docs/serving.md)."""
