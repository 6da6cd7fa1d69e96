"""Tunable linear layer.

A shared ω mixes the weight once and runs ``F.linear``. Per-sample ω mixes one weight per sample and runs
one batched matrix multiply (one vector or a few tokens per sample go through the vertex weights instead);
extra leading rows per sample (B·k, as in window attention) and token dimensions ride along in the matrix
rows. An ω map drives it token by token where its input holds the tokens of the image grid the last
convolution produced (:func:`~tunify.layers.omega.token_grid`) or the windows of a Swin-style block
(:mod:`~tunify.layers.windows`), through the vertex weights with the outputs mixed per token (the layer is
linear in its weight); elsewhere through the map's average per image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import TunableLayer
from .omega import check_rows, holds_tokens, map_mean, map_on_grid, omega_form, recent_grids, token_grid
from .windows import WindowLayout, fits_windows, window_tokens


class TunableLinear(TunableLayer):
    """Tunable counterpart of ``nn.Linear``."""

    window: WindowLayout | None = None
    """The window layout of the Swin-style block around the layer (set by
    :func:`~tunify.layers.windows.note_windows` at conversion)."""

    def forward(self, x: Tensor) -> Tensor:
        tensors = self.cached_shared()
        if tensors is not None:  # applied again at the same shared ω
            return F.linear(x, tensors["weight"], tensors.get("bias"))
        omega = self.omega()
        if omega_form(omega) == "map":
            alpha = self._token_alpha(x, omega)
            if alpha is not None:
                return self._per_token(x, alpha)
            omega = map_mean(omega)
        if omega_form(omega) == "shared" or x.ndim == 1:
            tensors = self.shared_tensors(omega)
            return F.linear(x, tensors["weight"], tensors.get("bias"))
        check_rows(omega, x.shape[0], "Linear")
        b = omega.shape[0]
        # [B, k·tokens, in]; -1 keeps the row count symbolic under torch.export (an empty layer, in = 0, cannot
        # infer it and counts the rows itself)
        rows = x.reshape(b, -1 if x.shape[-1] else x.shape[:-1].numel() // b, x.shape[-1])
        if self.uses_vertices(b, rows.shape[1]):  # one vector per sample, a few tokens
            return (
                self.per_sample_rows(rows.transpose(1, 2), omega).transpose(1, 2).reshape(*x.shape[:-1], -1)
            )
        tensors = self.source(self.alpha(omega))  # weight [B, out, in], bias [B, out]
        if "bias" in tensors:
            y = torch.baddbmm(tensors["bias"].unsqueeze(1), rows, tensors["weight"].transpose(1, 2))
        else:
            y = torch.bmm(rows, tensors["weight"].transpose(1, 2))
        return y.reshape(*x.shape[:-1], y.shape[-1])

    def _token_alpha(self, x: Tensor, omega: Tensor) -> Tensor | None:
        """α for each token of ``x`` (*x.shape[:-1], kernels) where an ω map can follow them: the image grid's
        tokens (:func:`~tunify.layers.omega.token_grid`) or the windows of the layer's Swin-style block;
        None elsewhere (the map's average then drives the layer)."""
        if self.window is not None and omega.ndim == 4:  # a block's windows first: it declared them
            tokens = tuple(x.shape[1:-1])
            for grid in recent_grids():
                if fits_windows(self.window, grid, omega.shape[0], x.shape[0], tokens):
                    if holds_tokens(x, omega, grid) and not self.window.keeps_order(grid):
                        return None  # the image's own tokens in the same shape: it cannot tell which it has
                    alpha = window_tokens(self._alpha_on(omega, grid), self.window)
                    return alpha.reshape(*x.shape[:-1], -1)
        grid = token_grid(x, omega)
        if grid is None:
            return None
        return self._alpha_on(omega, grid).flatten(2).transpose(1, 2).reshape(*x.shape[:-1], -1)

    def _alpha_on(self, omega: Tensor, grid: tuple[int, ...]) -> Tensor:
        """α of the map at every pixel of ``grid``, [B, kernels, *grid] (a 1×1 map broadcast: exported and
        compiled graphs take per-sample ω as one)."""
        alpha = self.alpha(map_on_grid(omega, grid))
        return alpha.expand(*alpha.shape[:2], *grid)

    def _per_token(self, x: Tensor, alpha: Tensor) -> Tensor:
        """Σ_i α_i(t)·(W_i x_t + b_i) for every token t of x (…, in), with α (…, kernels)."""
        constant, slopes = self.vertices()
        weight = slopes["weight"]  # [kernels, out, in]
        kernels, out = weight.shape[:2]
        alpha = alpha.unsqueeze(-2).to(x.dtype)  # [..., 1, kernels]
        y = F.linear(x, weight.reshape(kernels * out, -1)).unflatten(-1, (kernels, out))
        y = (alpha @ y).squeeze(-2)
        if "bias" in slopes:
            y = y + (alpha @ slopes["bias"].to(x.dtype)).squeeze(-2)
        if constant is not None:
            y = y + F.linear(x, constant["weight"], constant.get("bias"))
        return y
