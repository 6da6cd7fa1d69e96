"""Tiny stand-ins for the tunable model, the multi-loss, the ω sampler and the dataset (shared with the
torchrun worker script, hence a plain module and not a conftest)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

P = 2


class ToyTunable(nn.Module):
    """A residual two-conv net whose hidden features are shifted by ``phi(omega)`` (an affine map of ω)."""

    def __init__(self, channels: int = 4, p: int = P) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, 3, 3, padding=1)
        self.phi = nn.Linear(p, channels)

    def forward(self, x: Tensor, omega: Tensor) -> Tensor:
        omega = omega.expand(x.shape[0], -1) if omega.dim() == 1 else omega  # [B, p]
        h = torch.relu(self.conv1(x) + self.phi(omega)[:, :, None, None])
        return x + self.conv2(h)


class DictDataset(Dataset):
    """Noisy/clean pairs of small random images, as dict samples."""

    def __init__(self, n: int = 24, size: int = 8, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.clean = torch.rand(n, 3, size, size, generator=gen)
        self.noisy = self.clean + 0.2 * torch.randn(n, 3, size, size, generator=gen)

    def __len__(self) -> int:
        return len(self.clean)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {"input": self.noisy[i], "clean": self.clean[i]}


def multi_loss(output: Tensor, batch: dict[str, Tensor], omega: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """ω_0 · fidelity to the clean image + ω_1 · fidelity to the input, per sample, then the batch mean."""
    rec = (output - batch["clean"]).pow(2).mean(dim=(1, 2, 3))  # [B]
    ident = (output - batch["input"]).pow(2).mean(dim=(1, 2, 3))  # [B]
    loss = (omega[:, 0] * rec + omega[:, 1] * ident).mean()
    return loss, {"rec": rec.detach().mean(), "id": ident.detach().mean()}


def uniform_sampler(batch_size: int, generator: torch.Generator | None = None, device=None) -> Tensor:
    """ω ~ U[0, 1]^p per sample."""
    return torch.rand(batch_size, P, generator=generator, device=device)


class TwoConv(nn.Module):
    """A residual two-conv net, to be made tunable by ``tunify.convert``."""

    def __init__(self, channels: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(torch.relu(self.conv1(x)))


def make_model(seed: int = 0) -> nn.Module:
    """A converted TwoConv (its φ maps get the φ learning rate), with the same weights in every process."""
    import tunify

    torch.manual_seed(seed)
    tmodel = tunify.convert(TwoConv(), P)
    with torch.no_grad():  # copies that differ, so that ω matters from the first step
        for param in tmodel.parameters():
            param.add_(0.3 * torch.randn_like(param))
    return tmodel


def ddp_config():
    """The run that test_distributed.py trains once on 2 ranks (torchrun) and once in a single process."""
    from tunify.train import TrainConfig

    return TrainConfig(
        total_steps=5,
        batch_size=4,
        lr=1e-2,
        warmup_steps=1,
        ema_decay=0.8,
        grad_clip=0.5,
        phi_lr_mult=2.0,
        checkpoint_every=2,
        log_every=1,
        progress=False,
        device="cpu",
        seed=11,
    )
