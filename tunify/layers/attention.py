"""Tunable ``nn.MultiheadAttention``: the q/k/v in-projection (packed or separate) and the out-projection.

``nn.MultiheadAttention`` never calls ``out_proj.forward`` (it reads ``out_proj.weight`` directly), so the
projections cannot be swapped one by one: this layer replaces the whole module. A shared ω runs PyTorch's
own forward with the mixed tensors (identical maths, masks and fast paths); per-sample ω projects with one
batched matrix multiply per projection and computes the attention explicitly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from .base import SourceFactory, TunableLayer
from .omega import map_mean, omega_form


def _project(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """Per-sample linear map: x [B, L, in], weight [B, out, in], bias [B, out] -> [B, L, out]."""
    if bias is None:
        return torch.bmm(x, weight.transpose(1, 2))
    return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))


class TunableMultiheadAttention(TunableLayer):
    """Tunable counterpart of ``nn.MultiheadAttention`` (``bias_k``/``bias_v`` stay fixed)."""

    tensor_names = (
        "in_proj_weight",
        "q_proj_weight",
        "k_proj_weight",
        "v_proj_weight",
        "in_proj_bias",
        "out_proj.weight",
        "out_proj.bias",
    )

    def __init__(
        self,
        base_layer: nn.MultiheadAttention,
        p: int,
        *,
        kernels: int | None = None,
        source: SourceFactory | None = None,
    ) -> None:
        super().__init__(base_layer, p, kernels=kernels, source=source)
        self.batch_first = base_layer.batch_first

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        omega = self.omega()
        kwargs = dict(
            key_padding_mask=key_padding_mask,
            need_weights=need_weights,
            attn_mask=attn_mask,
            average_attn_weights=average_attn_weights,
            is_causal=is_causal,
        )
        if omega_form(omega) == "map":
            omega = map_mean(omega)  # attention sees tokens, not a pixel grid
        if omega_form(omega) == "shared" or query.dim() == 2:
            tensors = self.shared_tensors(omega)
            return functional_call(self.base_layer, tensors, (query, key, value), kwargs)
        return self._per_sample(omega, query, key, value, **kwargs)

    def _per_sample(
        self,
        omega: Tensor,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None,
        need_weights: bool,
        attn_mask: Tensor | None,
        average_attn_weights: bool,
        is_causal: bool,
    ) -> tuple[Tensor, Tensor | None]:
        mha = self.base_layer
        if not mha.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        b, tgt_len, embed = query.shape
        if omega.shape[0] != b:
            raise ValueError(f"MultiheadAttention: per-sample omega has {omega.shape[0]} rows, batch is {b}")
        t = self.source(self.alpha(omega))
        if "in_proj_weight" in t:
            wq, wk, wv = t["in_proj_weight"].chunk(3, dim=1)
        else:
            wq, wk, wv = t["q_proj_weight"], t["k_proj_weight"], t["v_proj_weight"]
        bq, bk, bv = t["in_proj_bias"].chunk(3, dim=1) if "in_proj_bias" in t else (None, None, None)
        q, k, v = _project(query, wq, bq), _project(key, wk, bk), _project(value, wv, bv)

        # boolean masks (True = hidden) become additive float masks (-inf), as PyTorch's own forward does
        attn_mask, key_padding_mask = (
            F._canonical_mask(
                mask=mask,
                mask_name=name,
                other_type=None,
                other_name="",
                target_type=q.dtype,
                check_other=False,
            )
            for mask, name in ((attn_mask, "attn_mask"), (key_padding_mask, "key_padding_mask"))
        )
        if attn_mask is None and is_causal:
            src_len = k.shape[1]
            attn_mask = torch.full((tgt_len, src_len), float("-inf"), dtype=q.dtype, device=q.device).triu(1)
        extra_kv = []  # keys no mask hides: bias_k/bias_v, then the zero-attention slot
        if mha.bias_k is not None:
            extra_kv.append((mha.bias_k.expand(b, 1, embed), mha.bias_v.expand(b, 1, embed)))
        if mha.add_zero_attn:
            zeros = q.new_zeros(b, 1, embed)
            extra_kv.append((zeros, zeros))
        for added_k, added_v in extra_kv:
            k, v = torch.cat([k, added_k], 1), torch.cat([v, added_v], 1)
            attn_mask = None if attn_mask is None else F.pad(attn_mask, (0, 1))
            key_padding_mask = None if key_padding_mask is None else F.pad(key_padding_mask, (0, 1))

        heads, src_len = mha.num_heads, k.shape[1]
        head_dim = embed // heads
        q = q.view(b, tgt_len, heads, head_dim).transpose(1, 2)  # [B, H, L, d]
        k = k.view(b, src_len, heads, head_dim).transpose(1, 2)  # [B, H, S, d]
        v = v.view(b, src_len, heads, head_dim).transpose(1, 2)
        mask = None  # additive, broadcastable to [B, H, L, S]
        if attn_mask is not None:
            mask = attn_mask.view(b, heads, tgt_len, src_len) if attn_mask.dim() == 3 else attn_mask
        if key_padding_mask is not None:
            padding = key_padding_mask.view(b, 1, 1, src_len)
            mask = padding if mask is None else mask + padding
        dropout = mha.dropout if self.training else 0.0
        if need_weights:
            scores = q @ k.transpose(-2, -1) / math.sqrt(head_dim)  # [B, H, L, S]
            weights = (scores if mask is None else scores + mask).softmax(dim=-1)
            if dropout > 0:
                weights = F.dropout(weights, p=dropout)
            out = weights @ v
        else:  # the fused kernel never builds the score matrix
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        out = _project(
            out.transpose(1, 2).reshape(b, tgt_len, embed), t["out_proj.weight"], t.get("out_proj.bias")
        )
        if not mha.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        return out, weights.mean(dim=1) if average_attn_weights else weights
