"""The converted network: the user's model with tunable layers, called as ``model(*args, omega=...)``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..layers import TunableMultiheadAttention, TunableTensor, check_omega, omega_form, use_omega
from ..layers.alphas import AlphaTable
from ..layers.epoch import EpochKeeper
from ..layers.generic import vmap_cannot_run, vmap_over_samples
from ..layers.inventory import Watched, list_readers
from ..layers.omega import (
    PerSampleRowsError,
    enter_traced,
    exit_traced,
    flatten_constant_map,
    rows_were_folded,
)
from ..layers.reader import OmegaReader, caching_allowed
from ..layers.recompute import ForwardCalls
from .config import ConvertConfig
from .layout import evaluating, rows_follow_samples
from .report import ConversionReport


def first_tensor(args: tuple, kwargs: dict) -> Tensor | None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, Tensor):
            return value
    return None


class TunableModel(nn.Module):
    """A network made tunable by :func:`tunify.convert`.

    ``base_model`` is the user's network (same class and methods) with its layers swapped. Calling
    ``model(*args, omega=omega, **kwargs)`` runs it with ω of shape (p,) shared by the batch or (B, p)
    with one row per sample; ω may require grad.
    """

    def __init__(
        self,
        base_model: nn.Module,
        config: ConvertConfig,
        report: ConversionReport,
        restore: dict[str, dict[str, Any]],
    ) -> None:
        super().__init__()
        self.base_model = base_model
        self.config = config
        self._report = report
        self._restore = restore  # attributes changed to switch off fused paths, put back by bake()
        self.info: dict[str, Any] = {}  # saved with the model: base network, objectives, what each ω_i does
        self._loop_per_sample = False
        self._rows_checked = False  # whether layers given B·k rows were seen to get them sample by sample
        self._forward_calls = ForwardCalls()  # the ω of calls a checkpointed backward may recompute
        self._epochs = EpochKeeper()  # one check of every layer's inference cache per call
        self._readers: list[tuple[OmegaReader, Watched]] | None = None
        for module in base_model.modules():
            if isinstance(module, OmegaReader):
                module.__dict__["_forward_calls"] = self._forward_calls  # shared, not a submodule
        # Per-sample ω is fed to the layers directly when every layer input holds the batch in dim 0. Two
        # kinds of network break that and run per-sample calls sample by sample under vmap instead: a
        # tunable tensor that cannot broadcast over the batch, and a sequence-first network (an attention
        # with batch_first=False takes (L, B, E), so the Linear layers around it see L rows, not B).
        self._vmap_per_sample = any(
            (isinstance(m, TunableTensor) and m.needs_vmap)
            or (isinstance(m, TunableMultiheadAttention) and not m.batch_first)
            for m in base_model.modules()
        )

    @property
    def p(self) -> int:
        return self.config.p

    def __prepare_scriptable__(self) -> TunableModel:
        """``torch.jit.script`` asks this first: refuse with the ways that work instead of TorchScript's
        complaint about the first annotation it cannot read (layers read ω from a context variable)."""
        raise TypeError(
            "TorchScript cannot compile a tunable network: export it with ω as an input "
            "(tunify.export(tmodel, 'model.pt2') or '.onnx', or `tunify export`), or bake it at one ω "
            "(tunify.bake(tmodel, omega)) and script that plain network"
        )

    def forward(self, *args: Any, omega: Tensor, **kwargs: Any) -> Any:
        x = first_tensor(args, kwargs)
        batch_dim = self.config.batch_dim
        batch = x.shape[batch_dim] if x is not None and x.ndim > batch_dim else None
        grid = tuple(x.shape[2:]) if x is not None and x.ndim >= 3 and batch_dim == 0 else None
        omega = check_omega(
            omega, self.p, batch, allow_extrapolation=self.config.allow_extrapolation, grid=grid
        )
        if x is not None:
            omega = omega.to(device=x.device)
        omega = flatten_constant_map(omega)
        form = omega_form(omega)
        if form != "shared" and omega.shape[0] == 0:  # an empty batch: any ω gives its empty output
            omega, form = omega.flatten(2).sum((0, 2)) if form == "map" else omega.sum(0), "shared"
        varies = form == "per_sample" or (form == "map" and omega.shape[0] > 1)
        if form == "map" and batch is not None and omega.shape[0] == 1 < batch and batch_dim == 0:
            # one map per image, so that a layer seeing more items than images knows they are folded patches
            omega = omega.expand(batch, *omega.shape[1:])
        if varies and batch_dim != 0:  # the layers take the batch in dimension 0: run sample by sample
            return self._sample_by_sample(omega, args, kwargs, batch_dim)
        compiled = torch.compiler.is_compiling() and not torch.compiler.is_exporting()
        if compiled and not (varies and self._vmap_per_sample):
            enter_traced(omega)  # no with/try block: dynamo resumes after graph breaks inside the network
            out = self.base_model(*args, **kwargs)
            folded = varies and rows_were_folded()  # known while tracing: it depends on shapes only
            exit_traced()
            if not folded or self._rows_checked:
                return out
            # the first compiled call that folds rows checks the layout outside the graph (disable: a graph
            # break; a network that folds none compiles with fullgraph=True); exported: tunify.export makes
            # an eager call before its trace
            torch.compiler.disable(self._check_rows_eagerly)(omega, args, kwargs)
            if not self._vmap_per_sample:
                return out
        if not (varies and self._vmap_per_sample):
            readers = self._listed_readers()
            epoch = self._epochs.epoch(omega, readers) if form == "shared" and caching_allowed() else None
            alphas = AlphaTable.for_call(omega, readers)
            try:
                with use_omega(omega, epoch=epoch, alphas=alphas):
                    out = self.base_model(*args, **kwargs)
                    folded = varies and rows_were_folded()
                if torch.is_grad_enabled() and not torch.compiler.is_compiling():
                    self._forward_calls.record(omega, out)
                if not (folded and self._rows_unchecked()):
                    return out
                self._rows_checked = True
                if rows_follow_samples(self.base_model, omega, args, kwargs):
                    return out
                self._vmap_per_sample = True  # e.g. torch.cat of two batches: rows are not sample-major
            except PerSampleRowsError:
                if not varies:
                    raise
                # Some layer runs once for the whole batch (e.g. a positional encoding computed from a
                # batch-1 tensor and repeated) or reads its weight directly: from now on run per-sample
                # calls one sample at a time.
                self._vmap_per_sample = True
        return self._sample_by_sample(omega, args, kwargs, batch_dim)

    def _listed_readers(self) -> list[tuple[OmegaReader, Watched]]:
        """The tunable layers and tensors the cache epochs and α tables cover: listed on first use and again
        after ``train()`` / ``eval()`` (the network may have been edited)."""
        if self._readers is None:
            self._readers = list_readers(self.base_model)
        return self._readers

    def train(self, mode: bool = True) -> TunableModel:
        """Also list the tunable layers afresh on the next call (the network may have been edited)."""
        self._readers = None
        return super().train(mode)

    def _check_rows_eagerly(self, omega: Tensor, args: tuple, kwargs: dict) -> None:
        """The per-sample layout check of the first compiled per-sample call, run outside the graph (it
        hooks layers and compares real values): one eager call, and the check itself if rows were folded."""
        self._rows_checked = True
        try:
            with evaluating(self.base_model), torch.no_grad(), use_omega(omega):  # no BatchNorm update
                self.base_model(*args, **kwargs)
                folded = rows_were_folded()
            if folded and not rows_follow_samples(self.base_model, omega, args, kwargs):
                self._vmap_per_sample = True
        except PerSampleRowsError:
            self._vmap_per_sample = True

    def _rows_unchecked(self) -> bool:
        """Whether folded rows still need :func:`rows_follow_samples` (never inside a trace or compile:
        ``tunify.export`` makes an eager call first, a compiled call :meth:`_check_rows_eagerly`)."""
        tracing = torch.compiler.is_compiling() or torch.compiler.is_exporting() or torch.jit.is_tracing()
        return not (self._rows_checked or tracing)

    def _sample_by_sample(self, omega: Tensor, args: tuple, kwargs: dict, batch_dim: int) -> Any:
        """Per-sample ω, one sample at a time: under vmap, or in a loop where vmap cannot run the network."""
        norm = next(
            (name for name, m in self.base_model.named_modules() if isinstance(m, _BatchNorm) and m.training),
            None,
        )
        if norm is not None:  # one sample at a time would silently give it per-sample statistics, or fail
            raise ValueError(
                "per-sample omega runs this network one sample at a time (a layer runs once for the whole "
                "batch or reads its weight directly, or the batch is not in dimension 0), but its BatchNorm "
                f"layer {norm!r} is in training mode and normalises over the whole batch: give one "
                "omega per batch (shape (p,); the `per_batch` omega sampler), or put the BatchNorm layers in "
                "eval mode"
            )
        if not (self._loop_per_sample or torch.compiler.is_exporting()):  # torch.export cannot trace vmap
            try:
                return vmap_over_samples(self.base_model, omega, args, kwargs, self._name, batch_dim)
            except RuntimeError as error:
                if not vmap_cannot_run(error):
                    raise
                self._loop_per_sample = True  # e.g. a layer reads ``weight.data`` in its forward
        return vmap_over_samples(self.base_model, omega, args, kwargs, self._name, batch_dim, loop=True)

    @property
    def _name(self) -> str:
        return type(self.base_model).__name__

    def conversion_report(self) -> ConversionReport:
        """What was converted: name, kind, type, shape and parameters added, one row each."""
        return self._report

    def __repr__(self) -> str:
        return f"{super().__repr__()}\n{self._report}"

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> Path:
        """Write ``config.json``, ``model.safetensors`` and a ``README.md`` model card (see :mod:`tunify.hub`)."""
        from ..hub import save_pretrained

        return save_pretrained(self, save_directory, **kwargs)

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:
        """Upload the :meth:`save_pretrained` folder to the Hugging Face Hub as one commit."""
        from ..hub import push_to_hub

        return push_to_hub(self, repo_id, **kwargs)
