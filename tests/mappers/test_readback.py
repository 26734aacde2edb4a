"""Reading recorded activations back over PCIe (`mappers.readback`): the prefetch list
schedule against hand-laid timelines, and the chip memory of its two layer buffers."""

from dataclasses import replace

import pytest

from mappers.readback import Prefetch, breakeven_transfer_s, prefetch_end_s
from mappers.train import TrainSpec, lower_train
from mappers.train_memory import train_memory
from tests.mappers.test_train import BF16, TOY


def test_transfer_bound_by_hand():
    """3 layers, backward 1 s, transfer 2 s, head 0.5 s. Link: x1 0-2, x2 2-4, x3 4-6 (its
    buffer freed by layer 1's backward at 3). Backward: 2-3, 4-5, 6-7."""
    assert prefetch_end_s(0.5, [1, 1, 1], [2, 2, 2]) == pytest.approx(7)


def test_compute_bound_by_hand():
    """Backward 2 s, transfer 1 s: x1 0-1, x2 1-2, x3 waits for layer 1's buffer (freed at
    3): 3-4. Backward: 1-3, 3-5, 5-7: only the first transfer shows."""
    assert prefetch_end_s(0.5, [2, 2, 2], [1, 1, 1]) == pytest.approx(7)


def test_head_hides_the_first_transfers_by_hand():
    """Head 2 s, transfers 0.5 s: x1 0-0.5, x2 0.5-1 both done before the first backward
    (2-3); x3 3-3.5 after layer 1 frees its buffer; backward 3-4, 4-5. Nothing exposed."""
    assert prefetch_end_s(2, [1, 1, 1], [0.5, 0.5, 0.5]) == pytest.approx(5)
    p = Prefetch(lead_s=2, layer_s=1, layers=3, layer_bytes_per_token=1, pcie_bytes_per_s=2)
    assert p.exposed_s(1) == 0.0


def test_two_buffers_stall_the_link_by_hand():
    """Uneven layers: backward 3, 1, 1 s, transfers 1 s, no head. x1 0-1, x2 1-2, x3 waits
    for layer 1's buffer (backward 1-4): 4-5. Backward: 1-4, 4-5, 5-6."""
    assert prefetch_end_s(0, [3, 1, 1], [1, 1, 1]) == pytest.approx(6)


def test_exposed_time_and_bytes_by_hand():
    """2 layers of 100 B a token at 1e5 B/s: 8 tokens take 0.008 s a layer. Backward 0.001
    s, no head: x1 0-0.008, x2 0.008-0.016, backward 0.008-0.009 and 0.016-0.017, against
    0.002 on the chip: 0.015 s exposed; 1600 B read back, 1600 B of buffers."""
    p = Prefetch(lead_s=0, layer_s=0.001, layers=2, layer_bytes_per_token=100,
                 pcie_bytes_per_s=1e5)
    assert p.exposed_s(8) == pytest.approx(0.015)
    assert p.exposed_s(0) == 0.0
    assert p.bytes(8) == 1600 and p.buffer_bytes(8) == 1600


def test_breakeven_transfer_by_hand():
    """Same 2 layers: exposed = 2 x - 0.001 once x > 0.001, so 0.015 s exposed at 0.008."""
    p = Prefetch(lead_s=0, layer_s=0.001, layers=2, layer_bytes_per_token=100,
                 pcie_bytes_per_s=1e5)
    assert breakeven_transfer_s(p, 0.015) == pytest.approx(0.008, rel=1e-9)
    assert breakeven_transfer_s(p, 0.0) == 0.0


def test_offloaded_records_leave_two_layers_on_the_chip():
    """A 4-layer toy (the 2-layer one's layers: 27008 B each for 16 tokens, head 12352 B):
    kept on chip 4 x 27008 + 12352 = 120384 B; offloaded, two buffers: 66368 B."""
    toy4 = replace(TOY, num_layers=4)
    spec = TrainSpec(batch=2, seq=8, reuse="activations")
    g = lower_train(toy4, spec, precision=BF16)
    assert train_memory(toy4, spec, g, precision=BF16).activations == 120_384
    assert train_memory(toy4, spec, g, precision=BF16, offloaded=True).activations == 66_368
    with pytest.raises(ValueError):
        train_memory(toy4, replace(spec, reuse="none"), g, precision=BF16, offloaded=True)
