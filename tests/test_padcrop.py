"""Padding-tap cropping is exact: same outputs and gradients as nn.Conv2d, and the model stays stock."""

import itertools

import pytest
import torch
from torch import nn

from fmnist.finetune import train as finetune_train
from fmnist.padcrop import PadCroppedConv2d, _span, cropped_padding
from fmnist.weights import build_resnet18, resolve_weights

SHAPES = [(n, k, s, p) for n, k, s, p in itertools.product((1, 2, 3, 5), (1, 3, 7), (1, 2), (0, 1, 3))
          if p < k and n + 2 * p >= k]


def _grads(conv, x):
    x = x.clone().requires_grad_(True)
    out = conv(x)
    (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
    return out.detach(), x.grad, conv.weight.grad, conv.bias.grad


@pytest.mark.parametrize("n,k,s,p", SHAPES)
def test_cropped_conv_matches_conv2d_in_value_and_gradient(n, k, s, p):
    torch.manual_seed(0)
    ref = nn.Conv2d(4, 6, k, stride=s, padding=p).double()
    crop = nn.Conv2d(4, 6, k, stride=s, padding=p).double()
    crop.load_state_dict(ref.state_dict())
    crop.__class__ = PadCroppedConv2d
    x = torch.randn(3, 4, n, n + 1, dtype=torch.float64)  # non-square: rows and columns crop separately
    for a, b in zip(_grads(ref, x), _grads(crop, x)):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_layer4_at_32px_keeps_only_the_taps_that_read_pixels():
    assert _span(1, 3, 1, 1) == (1, 1, 1)  # 3x3 on a 1x1 map: the centre tap alone
    assert _span(2, 3, 2, 1) == (1, 1, 2)  # strided 3x3 on a 2x2 map: a 2x2 kernel, one matrix product
    assert _span(4, 3, 1, 1) == (4, 0, 2)  # every tap reads a pixel somewhere: nothing to crop


@pytest.mark.parametrize("size", [28, 32])
def test_resnet18_trains_identically_and_stays_stock(size):
    torch.manual_seed(0)
    ref = build_resnet18(resolve_weights("none"), num_classes=10).double().train()
    crop = build_resnet18(resolve_weights("none"), num_classes=10).double().train()
    crop.load_state_dict(ref.state_dict())
    x = torch.randn(4, 3, size, size, dtype=torch.float64)
    ref(x).logsumexp(1).sum().backward()
    with cropped_padding(crop):
        assert any(type(m) is PadCroppedConv2d for m in crop.modules())
        crop(x).logsumexp(1).sum().backward()
    assert all(type(m) is not PadCroppedConv2d for m in crop.modules())
    for (name, a), b in zip(ref.named_parameters(), crop.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-9, msg=name)
    torch.testing.assert_close(ref.state_dict(), crop.state_dict())


def test_the_training_loop_crops_on_the_cpu_and_restores_on_error():
    m = build_resnet18(resolve_weights("none"), num_classes=10)
    assert "cpu" in finetune_train.PAD_CROP_DEVICES
    with pytest.raises(RuntimeError, match="boom"):
        with finetune_train._pad_crop(m, torch.device("cpu")):
            assert type(m.layer4[0].conv2) is PadCroppedConv2d
            raise RuntimeError("boom")
    assert type(m.layer4[0].conv2) is nn.Conv2d
    with finetune_train._pad_crop(m, torch.device("meta")):
        assert type(m.layer4[0].conv2) is nn.Conv2d
