"""The training loop of a tunable network with the parametric multi-loss.

Each step draws a fresh ω for every sample, runs ``model(x, omega=omega)`` and minimises
``loss_fn(output, batch, omega)`` (L = Σ ω_i λ_i L_i; Maggioni et al., "Tunable Convolutions with
Parametric Multi-Loss Optimization", CVPR 2023, Sec. 3.3), so one network learns the whole ω-family of
objectives. The run is reproducible and resumable: data order, ω draws and every RNG are functions of the
seed and the step, and checkpoints hold all of them, so a killed run resumed with ``resume=True`` continues
exactly as if it had never stopped.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, IterableDataset
from tqdm.auto import tqdm

from tunify._state_dict import load_state
from tunify.train.adversarial import find_discriminator
from tunify.train.checkpoint import CheckpointDir, save_weights
from tunify.train.config import RUN_FIELDS, TrainConfig
from tunify.train.data import ResumableBatchSampler, make_train_loader
from tunify.train.distributed import (
    all_gather_objects,
    all_reduce_mean_,
    barrier,
    dist_info,
    init_distributed,
    resolve_device,
)
from tunify.train.ema import ModelEMA
from tunify.train.log import RunLogger, RunningMeans
from tunify.train.optim import build_optimizer
from tunify.train.rng import capture_rng_state, restore_rng_state, seed_everything
from tunify.train.schedule import build_scheduler

LossFn = Callable[[Any, Mapping[str, Any], Tensor], Any]
OmegaSampler = Callable[..., Tensor]
EvalFn = Callable[[nn.Module, int], Mapping[str, float]]
WEIGHTS_FILE = "weights.safetensors"


class Trainer:
    """Trains ``model`` on ``loss_fn`` with ω drawn by ``sampler``; see :class:`TrainConfig` for the knobs.

    Args:
        model: a module called as ``model(x, omega=omega)`` with ``omega`` of shape (B, p).
        loss_fn: ``loss_fn(output, batch, omega)`` returning the scalar loss, or ``(loss, terms)`` with
            ``terms`` a mapping of named scalars to log. If it carries a discriminator (see
            :mod:`tunify.train.adversarial`), the trainer steps it with a second optimiser.
        sampler: ``sampler(batch_size, generator=...)`` returning ω of shape (batch_size, p).
        train_loader: a map-style dataset of dict samples ``{"input", "clean", ...}``, or a DataLoader over
            one (its dataset, ``collate_fn``, ``pin_memory`` and, unless ``config.num_workers`` is set, its
            ``num_workers`` are kept; order and batch size come from ``config``).
        config: the run's hyperparameters.
        out_dir: run folder for ``checkpoints/``, ``log.jsonl``, ``tb/`` and ``weights.safetensors``.
        resume: continue from the newest complete checkpoint in ``out_dir`` (a fresh start if none).
        eval_fn: ``eval_fn(model, step) -> {name: value}``, called on rank 0 with the EMA weights in eval
            mode every ``config.eval_every`` steps and at the end; results go to the log.

    Example:
        >>> trainer = Trainer(model, loss_fn, sampler, dataset, TrainConfig(total_steps=1000), "runs/x")
        >>> trainer.fit()
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        sampler: OmegaSampler,
        train_loader: Dataset | DataLoader,
        config: TrainConfig,
        out_dir: str | Path,
        *,
        resume: bool = False,
        eval_fn: EvalFn | None = None,
    ) -> None:
        self.config = config
        self.out_dir = Path(out_dir)
        self.device = resolve_device(config.device)
        init_distributed(self.device)
        self.dist = dist_info()
        if config.batch_size % self.dist.world_size:
            raise ValueError(
                f"batch_size ({config.batch_size}) must be divisible by the world size ({self.dist.world_size})"
            )
        seed_everything(config.seed + self.dist.rank)  # ranks draw different crops, noise, dropout
        self._amp_dtype = _amp_dtype(config.precision, self.device)
        if config.gradient_checkpointing:
            _enable_gradient_checkpointing(model)
        self._memory_format = torch.channels_last if config.channels_last else torch.preserve_format
        self.model = model.to(self.device, memory_format=self._memory_format)
        self._forward = _data_parallel(model, self.device) if self.dist.world_size > 1 else model
        if isinstance(loss_fn, nn.Module):
            loss_fn.to(self.device)
        self.loss_fn = loss_fn
        self.sampler = sampler
        self.eval_fn = eval_fn
        self.loader = _resumable_loader(train_loader, config, self.device)
        self.optimizer = build_optimizer(model, config)
        self.scheduler = build_scheduler(self.optimizer, config)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self._amp_dtype == torch.float16)
        self.ema = ModelEMA(model, config.ema_decay) if config.ema_decay is not None else None
        self.discriminator = find_discriminator(loss_fn)
        self.d_optimizer = (
            build_optimizer(self.discriminator.parameters, config, lr=config.discriminator_lr or config.lr)
            if self.discriminator is not None
            else None
        )
        self.omega_generator = torch.Generator().manual_seed(config.seed + 1)
        self.step = 0
        self._saved_step = -1
        self.checkpoints = CheckpointDir(self.out_dir / "checkpoints", keep=config.keep_checkpoints)
        if resume:
            self._resume()
        elif self.checkpoints.latest() is not None:
            raise ValueError(
                f"out_dir {self.out_dir} already holds checkpoints; pass resume=True or a new folder"
            )
        self.logger = RunLogger(self.out_dir) if self.dist.is_main else None
        if self.logger is not None:
            self.logger.truncate(self.step)

    def fit(self) -> nn.Module:
        """Train until ``config.total_steps``; returns the (unwrapped) model with its last-iterate weights."""
        self.model.train()
        self.loader.batch_sampler.set_start_step(self.step)
        batches = iter(self.loader)
        window = RunningMeans()
        show = self.config.progress and self.dist.is_main
        with tqdm(
            total=self.config.total_steps, initial=self.step, disable=not show, dynamic_ncols=True
        ) as bar:
            while self.step < self.config.total_steps:
                window.add(self._train_step(next(batches)))
                self.step += 1
                bar.update(1)
                if self.step % self.config.log_every == 0 or self.step == self.config.total_steps:
                    record = self._log_record(window)
                    bar.set_postfix(loss=f"{record['loss']:.4g}", img_s=f"{record['images_per_s']:.1f}")
                    self._log(record)
                    window.reset()
                if self.step % self.config.checkpoint_every == 0:
                    self.save_checkpoint()
                if (
                    self.eval_fn is not None
                    and self.config.eval_every
                    and self.step % self.config.eval_every == 0
                ):
                    self.evaluate()
        self._finish()
        return self.model

    def _train_step(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """One update of the model (and of the discriminator, if any); returns the values to log."""
        batch = _to_device(batch, self.device, self._memory_format)
        omega = self._draw_omega()  # [B_local, p]
        frozen = self.discriminator.frozen() if self.discriminator else contextlib.nullcontext()
        with frozen:
            with self._autocast():
                output = self._forward(batch["input"], omega=omega)
                loss, terms = _split_loss(self.loss_fn(output, batch, omega))
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
        self._clip_and_step(self.optimizer, self.model.parameters())
        values = {"loss": loss.detach(), **{f"terms/{k}": v for k, v in terms.items()}}
        if self.discriminator is not None:
            values["d_loss"] = self._discriminator_step(output, batch)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        return values

    def _discriminator_step(self, output: Tensor, batch: Mapping[str, Any]) -> Tensor:
        with self._autocast():
            d_loss, _ = _split_loss(self.discriminator.loss(output.detach(), batch))
        self.d_optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(d_loss).backward()
        all_reduce_mean_(p.grad for p in self.discriminator.parameters if p.grad is not None)
        self._clip_and_step(self.d_optimizer, self.discriminator.parameters)
        return d_loss.detach()

    def _clip_and_step(self, optimizer: torch.optim.Optimizer, params: Any) -> None:
        if self.config.grad_clip is not None:
            self.scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(list(params), self.config.grad_clip)
        self.scaler.step(optimizer)

    def _draw_omega(self) -> Tensor:
        """ω for this rank's share of the global batch.

        Every rank draws the whole global batch's ω from the same generator and keeps its own rows: each
        sample gets its own ω, and the run does not depend on the number of ranks.
        """
        total = self.config.batch_size
        omega = self.sampler(total, generator=self.omega_generator)  # [B, p]
        if not isinstance(omega, Tensor) or omega.dim() != 2 or omega.shape[0] != total:
            raise ValueError(
                f"sampler({total}) must return a (batch_size, p) tensor, got {getattr(omega, 'shape', omega)}"
            )
        local = total // self.dist.world_size
        omega = omega[self.dist.rank * local : (self.dist.rank + 1) * local]
        if self.device.type == "cuda" and omega.device.type == "cpu":  # as the batches: a copy from pageable
            omega = omega.pin_memory()  # memory waits for the GPU to finish the previous step
        return omega.to(self.device, non_blocking=True)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self._amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self._amp_dtype)

    @contextlib.contextmanager
    def eval_weights(self) -> Iterator[nn.Module]:
        """The model in eval mode with the EMA weights swapped in (its own weights when there is no EMA)."""
        was_training = self.model.training
        swap = (
            self.ema.swapped_into(self.model) if self.ema is not None else contextlib.nullcontext(self.model)
        )
        with swap as model, torch.no_grad():
            model.eval()
            try:
                yield model
            finally:
                model.train(was_training)

    def inference_weights(self) -> dict[str, Tensor]:
        """The weights to evaluate and ship: the EMA when the run keeps one, else the current weights."""
        return self.ema.state_dict() if self.ema is not None else self.model.state_dict()

    def evaluate(self) -> Mapping[str, float] | None:
        """Run ``eval_fn`` on rank 0 with the EMA weights and log the result."""
        if self.eval_fn is None or not self.dist.is_main:
            return None
        with self.eval_weights() as model:
            results = dict(self.eval_fn(model, self.step))
        self._log({"step": self.step, "eval": results})
        return results

    def save_checkpoint(self) -> Path | None:
        """Write a resumable checkpoint of the current step; call it on every rank, rank 0 writes it.

        Returns the checkpoint folder on rank 0, None elsewhere.
        """
        rng_states = all_gather_objects(capture_rng_state())  # one per rank
        self._saved_step = self.step
        if not self.dist.is_main:
            return None
        tensors = {"model": self.model.state_dict()}
        if self.ema is not None:
            tensors["ema"] = self.ema.state_dict()
        if self.discriminator is not None:
            tensors["discriminator"] = {str(i): p for i, p in enumerate(self.discriminator.parameters)}
        state = {
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "omega_generator": self.omega_generator.get_state(),
            "rng": rng_states,
            "config": self.config.to_dict(),
        }
        if self.d_optimizer is not None:
            state["d_optimizer"] = self.d_optimizer.state_dict()
        return self.checkpoints.save(self.step, tensors, state)

    def _resume(self) -> None:
        path = self.checkpoints.latest()
        if path is None:
            return
        tensors, state = self.checkpoints.load(path)
        load_state(self.model, tensors["model"])
        if self.ema is not None:
            if "ema" not in tensors:
                raise ValueError(f"checkpoint {path} has no EMA weights but config.ema_decay is set")
            self.ema.load_state_dict(tensors["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.discriminator is not None:
            with torch.no_grad():
                for i, p in enumerate(self.discriminator.parameters):
                    p.copy_(tensors["discriminator"][str(i)])
            self.d_optimizer.load_state_dict(state["d_optimizer"])
        self.omega_generator.set_state(state["omega_generator"])
        self.step = self._saved_step = int(state["step"])
        if len(state["rng"]) == self.dist.world_size:
            restore_rng_state(state["rng"][self.dist.rank])
        else:
            warnings.warn(
                f"{path} was saved by {len(state['rng'])} ranks: RNG streams re-seeded", stacklevel=3
            )
            seed_everything(self.config.seed + self.dist.rank + 1_000_003 * self.step)
        config = self.config.to_dict()
        changed = sorted(k for k, v in state["config"].items() if k not in RUN_FIELDS and config.get(k) != v)
        if changed:  # how the run is carried out (workers, device, progress …) may change freely
            warnings.warn(f"resuming {path} with a different config for {changed}", stacklevel=3)

    def _log_record(self, window: RunningMeans) -> dict[str, Any]:
        means = window.means()
        record: dict[str, Any] = {
            "step": self.step,
            "loss": means.pop("loss"),
            "terms": {k.removeprefix("terms/"): v for k, v in means.items() if k.startswith("terms/")},
            "lr": self.optimizer.param_groups[0]["lr"],
            "images_per_s": window.steps * self.config.batch_size / max(window.seconds(), 1e-9),
        }
        if "d_loss" in means:
            record["d_loss"] = means["d_loss"]
        return record

    def _log(self, record: Mapping[str, Any]) -> None:
        if self.logger is not None:
            self.logger.log(record)

    def _finish(self) -> None:
        if self._saved_step != self.step:  # the same decision on every rank: saving is a collective
            self.save_checkpoint()
        if self.eval_fn is not None:
            self.evaluate()
        if self.dist.is_main:
            save_weights(self.inference_weights(), self.out_dir / WEIGHTS_FILE)
            self.logger.close()
        barrier()


def _amp_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype, or None for fp32; ``auto`` means fp16 on CUDA (with a GradScaler), fp32 elsewhere."""
    if precision == "auto":
        precision = "fp16" if device.type == "cuda" else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision='fp16' needs CUDA; use 'bf16' or 'fp32' on this device")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def _data_parallel(model: nn.Module, device: torch.device) -> nn.Module:
    """DDP averages the gradients over ranks in backward; the trainer keeps using the unwrapped model."""
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def _enable_gradient_checkpointing(model: nn.Module) -> None:
    enable = getattr(model, "gradient_checkpointing_enable", None)
    if not callable(enable):
        raise ValueError(
            f"gradient_checkpointing=True but {type(model).__name__} has no gradient_checkpointing_enable()"
        )
    enable()


def _resumable_loader(data: Dataset | DataLoader, config: TrainConfig, device: torch.device) -> DataLoader:
    """A loader whose batch order the trainer controls (see :mod:`tunify.train.data`).

    Batches for a GPU come in pinned memory: a copy from pageable memory waits for the GPU to finish the
    previous step (a DnCNN step on an H200, 400 steps with 12 workers: 13.6 ms pinned, 15.1 ms pageable).
    """
    pin = device.type == "cuda"
    user_loader = isinstance(data, DataLoader)
    workers = config.num_workers or (data.num_workers if user_loader else 0)  # the user's workers stay
    if pin and workers == 0:
        warnings.warn(
            "training on CUDA with num_workers=0: every batch is cropped and degraded in the main process while "
            "the GPU waits (a CDnCNN-B step on an H200: 30.7 ms against 9 ms with 12 workers); set "
            "TrainConfig(num_workers=...), train.num_workers=8 in a recipe",
            stacklevel=3,
        )
    if user_loader:
        if isinstance(data.batch_sampler, ResumableBatchSampler):
            return data
        per_rank = config.batch_size // dist_info().world_size
        if data.batch_size not in (None, config.batch_size, per_rank):  # global or per-rank size: as meant
            warnings.warn(
                f"train_loader batch_size {data.batch_size} replaced by config.batch_size {config.batch_size} "
                "(global over ranks)",
                stacklevel=3,
            )
        return make_train_loader(
            data.dataset,
            config,
            collate_fn=data.collate_fn,
            pin_memory=data.pin_memory or pin,
            num_workers=workers,
        )
    if isinstance(data, IterableDataset) or not hasattr(data, "__len__"):
        raise TypeError("train_loader must be a map-style Dataset (with __len__) or a DataLoader over one")
    return make_train_loader(data, config, pin_memory=pin)


def _to_device(
    batch: Mapping[str, Any], device: torch.device, memory_format: torch.memory_format
) -> dict[str, Any]:
    """The batch on ``device``; its images (4-D tensors) in ``memory_format``."""
    if not isinstance(batch, Mapping) or "input" not in batch:
        raise TypeError(f"batches must be dicts with an 'input' tensor, got {type(batch).__name__}")
    return {k: _moved(v, device, memory_format) if isinstance(v, Tensor) else v for k, v in batch.items()}


def _moved(tensor: Tensor, device: torch.device, memory_format: torch.memory_format) -> Tensor:
    if tensor.dim() != 4:
        memory_format = torch.preserve_format
    return tensor.to(device, non_blocking=True, memory_format=memory_format)


def _split_loss(result: Any) -> tuple[Tensor, dict[str, Tensor]]:
    """Accept a scalar tensor or a ``(loss, terms)`` pair (such as ``tunify.objectives.LossResult``)."""
    if isinstance(result, Tensor):
        return result, {}
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], Mapping):
        return result[0], dict(result[1])
    raise TypeError(f"loss_fn must return a scalar tensor or (loss, terms), got {type(result).__name__}")
