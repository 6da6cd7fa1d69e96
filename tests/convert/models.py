"""Small networks that exercise the converter's hard cases."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class AttentionNet(nn.Module):
    """nn.MultiheadAttention used directly, sequence-first."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(6, 16)
        self.attn = nn.MultiheadAttention(16, 4)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [B, L, 6]
        h = self.embed(x).transpose(0, 1)
        h, _ = self.attn(h, h, h)
        return self.head(h.transpose(0, 1))


class SequenceFirstNet(nn.Module):
    """Sequence-first throughout (as IPT's transformer): Linear layers see (L, B, E), L rows not B."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(6, 16)
        self.attn = nn.MultiheadAttention(16, 4)
        self.mlp = nn.Linear(16, 16)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [B, L, 6]
        h = self.embed(x.transpose(0, 1))
        h = h + self.attn(h, h, h)[0]
        return self.head(torch.relu(self.mlp(h))).transpose(0, 1)


class EncoderNet(nn.Module):
    """nn.TransformerEncoder whose layers take PyTorch's fused path in eval mode."""

    def __init__(self) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, batch_first=True, dropout=0.0)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


class FunctionalNet(nn.Module):
    """Calls F.conv2d and F.linear on its own parameters, at the root and in a child."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(8, 3, 3, 3) * 0.2)
        self.bias = nn.Parameter(torch.randn(8) * 0.1)
        self.child = FunctionalChild()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.child(F.relu(F.conv2d(x, self.weight, self.bias, padding=1)))


class FunctionalChild(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Parameter(torch.randn(4, 8) * 0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.mean(dim=(2, 3)), self.proj)


class SharedNet(nn.Module):
    """One conv reached by two names and called twice."""

    def __init__(self) -> None:
        super().__init__()
        self.block = nn.Conv2d(4, 4, 3, padding=1)
        self.again = self.block
        self.stem = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.again(torch.relu(self.block(self.stem(x))))


class ControlFlowNet(nn.Module):
    """Shape-dependent control flow (fx cannot trace it whole), like SwinIR's window branch."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.body = PaddedBlock()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        if h.shape[-1] % 2:
            h = F.pad(h, (0, 1, 0, 0))
        return self.body(h)


class PaddedBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.out = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        y = self.conv(x)
        if h > 4:
            y = y + x
        return self.out(y.reshape(b, c, h * w).mean(-1))


class DeepControlFlowNet(nn.Module):
    """Shape-dependent control flow two levels down, with functional calls below it and after it: the
    analysis traces around the block it cannot trace, then into that block's children."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 3, 3, padding=1)
        self.stages = nn.Sequential(nn.Sequential(BranchingBlock()))
        self.tail = FunctionalNet()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        return self.stages(h) + self.tail(h)


class BranchingBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.functional = FunctionalNet()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 2:
            x = F.pad(x, (0, 1, 0, 1))
        return self.functional(x)


class BlurPoolNet(nn.Module):
    """A fixed binomial filter kept as a buffer and applied with F.conv2d (as timm's BlurPool2d)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        taps = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("filt", (taps[:, None] * taps[None, :] / 16).expand(4, 1, 3, 3).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(self.conv(x), (1, 1, 1, 1), mode="reflect"), self.filt, stride=2, groups=4)


class ConvZooNet(nn.Module):
    """Transposed, grouped, depthwise, dilated, 1-D and 3-D convolutions in one network."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.grouped = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=4, padding_mode="reflect")
        self.depthwise = nn.Conv2d(8, 8, 3, padding="same", groups=8, bias=False)
        self.up = nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1, groups=2)
        self.line = nn.Conv1d(4, 4, 5, padding=2, padding_mode="circular")
        self.volume = nn.Conv3d(1, 2, 3, padding=1)
        self.volume_up = nn.ConvTranspose3d(2, 1, (1, 3, 3), padding=(0, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.up(self.depthwise(torch.relu(self.grouped(self.down(x)))))  # [B, 4, H, W]
        b, c, hh, ww = h.shape
        h = self.line(h.reshape(b, c, hh * ww)).reshape(b, c, hh, ww)
        return self.volume_up(self.volume(h.unsqueeze(1))).squeeze(1)


def cdncnn() -> nn.Sequential:
    """The CDnCNN-B layout of ../shared/pretrained (20 convs, 3→64→…→3)."""
    layers: list[nn.Module] = [nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(inplace=True)]
    for _ in range(18):
        layers += [nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(inplace=True)]
    layers.append(nn.Conv2d(64, 3, 3, padding=1))
    return nn.Sequential(*layers)


class BatchOnceNet(nn.Module):
    """A layer run once for the whole batch and repeated (like XCiT's positional encoding)."""

    def __init__(self) -> None:
        super().__init__()
        self.encode = nn.Conv2d(2, 3, 1)
        self.body = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = torch.ones(1, 2, *x.shape[-2:], device=x.device)
        return self.body(x + self.encode(grid).repeat(x.shape[0], 1, 1, 1))


class BiasedAttention(nn.Module):
    """Passes its child's weight to F.linear with a bias of its own (timm's BEiT/EVA attention)."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(8, 24, bias=False)
        self.q_bias = nn.Parameter(torch.randn(8) * 0.1)
        self.proj = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = torch.cat([self.q_bias, torch.zeros_like(self.q_bias), self.q_bias])
        q, k, v = F.linear(x, self.qkv.weight, bias).chunk(3, dim=-1)
        return self.proj(torch.softmax(q @ k.transpose(-2, -1), dim=-1) @ v)


class BiasedAttentionNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = BiasedAttention()
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.attn(x).mean(1))
