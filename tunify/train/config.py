"""Training configuration for tunable networks.

One dataclass gathers every knob of a run so that a recipe can save it next to the checkpoints and a resumed
run can check it is continuing the same experiment (paper: Maggioni et al., "Tunable Convolutions with
Parametric Multi-Loss Optimization", CVPR 2023, Sec. 3.3 training).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Any

_OPTIMIZERS = ("adam", "adamw")
_SCHEDULES = ("constant", "cosine", "multistep")
_PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DEVICES = ("auto", "cpu", "cuda")

#: Fields that say how a run is carried out, not what it learns: two configs differing only in these train the
#: same network (up to the noise draws of loader workers), so a cached result can be reused across them.
RUN_FIELDS = frozenset(
    {
        "progress",
        "log_every",
        "checkpoint_every",
        "keep_checkpoints",
        "num_workers",
        "device",
        "gradient_checkpointing",
        "channels_last",
    }
)


@dataclass
class TrainConfig:
    """Everything that defines a training run, checked on construction.

    Args:
        total_steps: number of optimiser updates of the whole run.
        batch_size: global batch size, summed over all data-parallel ranks (must divide by the world size),
            so that a run gives the same result on any number of GPUs.
        optimizer: ``"adam"`` (L2 weight decay) or ``"adamw"`` (decoupled weight decay).
        lr: base learning rate. The default suits fine-tuning a converted pretrained network: with Adam,
            1e-4 knocked the pretrained CDnCNN-B down by 2-4 dB in 150 steps (benchmarks/README.md).
        betas: Adam betas.
        weight_decay: weight decay of every trainable parameter.
        phi_lr_mult: learning-rate multiplier for parameters under a submodule named ``phi`` (the tunable
            layers' affine maps of ω), which often want a different step size than the kernels.
        schedule: ``"constant"``, ``"cosine"`` (decays to ``min_lr_ratio * lr`` at ``total_steps``) or
            ``"multistep"`` (multiplied by ``gamma`` at each of ``milestones``).
        warmup_steps: linear warm-up from ``lr / warmup_steps`` to ``lr`` before the schedule starts.
        min_lr_ratio: floor of the cosine schedule, as a fraction of ``lr``.
        milestones: absolute steps at which ``multistep`` multiplies the learning rate by ``gamma``.
        gamma: multistep decay factor.
        ema_decay: decay of the exponential moving average of the weights, or ``None`` for no EMA; when
            set, evaluation and the exported weights use the EMA weights.
        grad_clip: maximum global gradient norm, or ``None`` for no clipping.
        precision: ``"auto"`` (fp16 with a GradScaler on CUDA, fp32 on CPU), ``"fp32"``, ``"bf16"``
            (autocast, also on CPU) or ``"fp16"`` (CUDA only).
        gradient_checkpointing: call the model's ``gradient_checkpointing_enable()`` to trade compute for
            memory.
        channels_last: keep the model's 4-D weights and the batches' images in ``torch.channels_last``
            (NHWC), the layout GPU tensor cores convolve fastest (an H200 took a training step of the tunable
            CDnCNN-B from 19.2 to 16.5 ms); outputs are unchanged.
        discriminator_lr: learning rate of the discriminator of an adversarial loss (``None``: ``lr``).
        checkpoint_every: save a resumable checkpoint every this many steps (and at the end).
        keep_checkpoints: number of most recent checkpoints kept on disk.
        log_every: write a log record every this many steps.
        eval_every: call the trainer's ``eval_fn`` every this many steps (0: only at the end).
        seed: seed of the weights' RNGs, the data order and the ω draws.
        num_workers: data-loader worker processes.
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        progress: show a tqdm progress bar on rank 0.
        version: version of this config layout.
    """

    total_steps: int = 100_000
    batch_size: int = 16
    optimizer: str = "adam"
    lr: float = 2e-5
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    phi_lr_mult: float = 1.0
    schedule: str = "cosine"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    milestones: tuple[int, ...] = field(default_factory=tuple)
    gamma: float = 0.5
    ema_decay: float | None = None
    grad_clip: float | None = None
    precision: str = "auto"
    gradient_checkpointing: bool = False
    channels_last: bool = False
    discriminator_lr: float | None = None
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    log_every: int = 50
    eval_every: int = 0
    seed: int = 0
    num_workers: int = 0
    device: str = "auto"
    progress: bool = True
    version: int = 1

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)  # type: ignore[assignment]
        self.milestones = tuple(self.milestones)
        _positive_int(self, "total_steps", "batch_size", "checkpoint_every", "keep_checkpoints", "log_every")
        _non_negative_int(self, "warmup_steps", "eval_every", "seed", "num_workers")
        _choice(self, "optimizer", _OPTIMIZERS)
        _choice(self, "schedule", _SCHEDULES)
        _choice(self, "precision", _PRECISIONS)
        _choice(self, "device", _DEVICES)
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not self.phi_lr_mult > 0:
            raise ValueError(f"phi_lr_mult must be > 0, got {self.phi_lr_mult}")
        if self.warmup_steps >= self.total_steps:
            raise ValueError(f"warmup_steps ({self.warmup_steps}) must be < total_steps ({self.total_steps})")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if list(self.milestones) != sorted(set(self.milestones)) or any(m <= 0 for m in self.milestones):
            raise ValueError(f"milestones must be strictly increasing positive steps, got {self.milestones}")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1) or None, got {self.ema_decay}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be > 0 or None, got {self.grad_clip}")
        if self.discriminator_lr is not None and not self.discriminator_lr > 0:
            raise ValueError(f"discriminator_lr must be > 0 or None, got {self.discriminator_lr}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Rebuild from :meth:`to_dict`; unknown keys (from a newer tunify) are dropped with a warning."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            warnings.warn(f"TrainConfig: ignoring unknown keys {unknown}; upgrade tunify?", stacklevel=2)
        return cls(**{k: v for k, v in data.items() if k in known})


def _positive_int(cfg: TrainConfig, *names: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def _non_negative_int(cfg: TrainConfig, *names: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative int, got {value!r}")


def _choice(cfg: TrainConfig, name: str, choices: tuple[str, ...]) -> None:
    if getattr(cfg, name) not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {getattr(cfg, name)!r}")
