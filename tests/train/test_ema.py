from __future__ import annotations

import pytest
import torch
from torch import nn

from tunify.train import ModelEMA


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))


def test_update_is_an_exponential_average():
    net = _net()
    w0 = net[0].weight.detach().clone()
    ema = ModelEMA(net, decay=0.9)
    with torch.no_grad():
        net[0].weight.add_(1.0)
    ema.update(net)
    torch.testing.assert_close(ema.shadow["0.weight"], 0.9 * w0 + 0.1 * (w0 + 1.0))
    with torch.no_grad():
        net[0].weight.add_(1.0)
    ema.update(net)
    torch.testing.assert_close(ema.shadow["0.weight"], 0.9 * (0.9 * w0 + 0.1 * (w0 + 1)) + 0.1 * (w0 + 2))


def test_float_buffers_averaged_integer_buffers_copied():
    net = _net()
    ema = ModelEMA(net, decay=0.5)
    net.train()
    net(torch.randn(8, 3))
    ema.update(net)
    assert ema.shadow["1.num_batches_tracked"].item() == 1
    torch.testing.assert_close(ema.shadow["1.running_mean"], 0.5 * net[1].running_mean)


def test_swapped_into_restores_live_weights():
    net = _net()
    ema = ModelEMA(net, decay=0.5)
    live = net[0].weight.detach().clone()
    with torch.no_grad():
        ema.shadow["0.weight"].fill_(3.0)
    with ema.swapped_into(net) as model:
        assert torch.all(model[0].weight == 3.0)
    torch.testing.assert_close(net[0].weight.detach(), live)


def test_state_dict_round_trip_and_bad_decay():
    net = _net()
    ema = ModelEMA(net, decay=0.5)
    other = ModelEMA(_net(), decay=0.5)
    with torch.no_grad():
        ema.shadow["0.bias"].fill_(7.0)
    other.load_state_dict(ema.state_dict())
    assert torch.all(other.shadow["0.bias"] == 7.0)
    with pytest.raises(KeyError):
        other.load_state_dict({"0.bias": torch.zeros(2)})
    with pytest.raises(ValueError, match="decay"):
        ModelEMA(net, decay=1.0)
