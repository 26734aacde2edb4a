"""The compiler pipeline, top to bottom: ``lower -> quantize -> place -> transfers``.

Each pass is a pure function of the IR; later passes (``tile``) slot in here.
The compiler imports no unit model: costing a placed graph and laying it out in time is the
simulator's side (`sim.step`), which calls `compile_graph` and then `mappers.schedule`.
"""

from __future__ import annotations

from sim.hardware import System

from .ir import Batch, Graph, Phase, Precision
from .lower import lower
from .models import ModelConfig
from .place import place
from .quantize import quantize
from .train import TrainSpec, lower_train
from .transfers import insert_transfers


def compile_graph(model: ModelConfig, system: System, *, phase: Phase, precision: Precision,
                  seqs: Batch | None = None, batch: int | None = None,
                  new_tokens: int | None = None, context: int | None = None) -> Graph:
    """Lower one step of ``model`` (the ragged batch ``seqs``, or ``batch`` equal sequences:
    `mappers.lower.lower`), add the work its quantization scheme brings
    (`mappers.quantize`), place every op on a unit of ``system`` and make every move between
    units' memories an explicit transfer op."""
    graph = lower(model, phase=phase, seqs=seqs, batch=batch, new_tokens=new_tokens,
                  context=context, precision=precision, tp=system.tensor_parallel,
                  pp=system.pipeline_parallel)
    graph = place(quantize(graph), system)
    return insert_transfers(graph)


def compile_train_graph(model: ModelConfig, system: System, spec: TrainSpec, *,
                        precision: Precision) -> Graph:
    """Lower one training step (`mappers.train.lower_train`), place every op on a unit of
    ``system`` (as a prefill's: training steps run its op kinds where a prefill does) and
    make every move between units' memories an explicit transfer op."""
    graph = lower_train(model, spec, precision=precision, tp=system.tensor_parallel,
                        pp=system.pipeline_parallel)
    return insert_transfers(place(graph, system))
