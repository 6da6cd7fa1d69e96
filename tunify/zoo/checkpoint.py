"""Safe loading of official checkpoints (SwinIR, NAFNet and every other architecture spandrel detects).

Files are read with `torch.load(weights_only=True)` or safetensors only: a checkpoint from the internet must
never run code. spandrel then detects the architecture and its hyper-parameters from the state dict and
builds the network; we hand back `descriptor.model` in eval mode, because the descriptor's own call clamps
outputs to [0, 1] and spandrel returns models in training mode. The original releases of DnCNN (CDnCNN-B,
the blind grey DnCNN) and FFDNet ship as a bare `nn.Sequential` state dict that spandrel does not
recognise; those are read into spandrel's DnCNN and tunify's own FFDNet here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .._state_dict import load_state
from .errors import (
    CheckpointError,
    CheckpointNotFoundError,
    UnknownArchitectureError,
    UnsafeCheckpointError,
)
from .official import fetch
from .spec import OWN_PREFIX, ArchSpec, build

#: Wrapper keys of training frameworks, in order of preference: KAIR/BasicSR (SwinIR, NAFNet) save
#: `params` and `params_ema`; their test scripts use the EMA weights when present, and so do we.
WRAPPER_KEYS = (
    "params_ema",
    "params-ema",
    "params",
    "state_dict",
    "model_state_dict",
    "net_g",
    "model",
    "net",
)
#: Prefixes that multi-GPU training adds to every key.
COMMON_PREFIXES = ("module.",)

_SAFETENSORS_EXT = (".safetensors", ".sft")


def _where(source: str | os.PathLike[str] | None) -> str:
    return f"checkpoint {os.fspath(source)!r}" if source is not None else "state dict"


def _read_file(path: Path) -> Any:
    """Read a .pth/.pt/.ckpt/.bin (zip or legacy pickle) or .safetensors file without executing code."""
    if not path.exists():
        raise CheckpointNotFoundError(f"checkpoint {str(path)!r}: no such file")
    if path.is_dir():
        raise CheckpointError(
            f"checkpoint {str(path)!r}: is a directory, expected a .pth or .safetensors file"
        )
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(
            f"checkpoint {str(path)!r}: the file is empty (0 bytes); the download or save failed"
        )
    with path.open("rb") as f:
        head = f.read(16)
    is_zip = head.startswith(b"PK")
    is_pickle = head[:1] == b"\x80"  # pickle protocol >= 2 (torch's legacy format)
    is_safetensors = path.suffix.lower() in _SAFETENSORS_EXT or (len(head) > 8 and head[8:9] == b"{")
    if is_safetensors and not (is_zip or is_pickle):
        return _read_safetensors(path, size)
    if not (is_zip or is_pickle):
        raise CheckpointError(
            f"checkpoint {str(path)!r}: not a PyTorch checkpoint (zip or pickle) nor a safetensors file; "
            "the file is corrupt or of another format"
        )
    if is_zip and not _has_zip_end_record(path, size):
        raise CheckpointError(
            f"checkpoint {str(path)!r}: truncated or corrupt zip archive ({size} bytes, no end-of-archive "
            "record); the download or save was probably cut short"
        )
    return _read_torch(path)


def _has_zip_end_record(path: Path, size: int) -> bool:
    """A complete zip ends with an end-of-central-directory record within its last 64 KiB + 22 bytes."""
    with path.open("rb") as f:
        f.seek(max(0, size - (65536 + 22)))
        return b"PK\x05\x06" in f.read()


def _read_safetensors(path: Path, size: int) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except SafetensorError as e:
        problem = "truncated or corrupt" if "incomplete" in str(e) or "too small" in str(e) else "corrupt"
        raise CheckpointError(
            f"checkpoint {str(path)!r}: {problem} safetensors file ({size} bytes): {e}"
        ) from None


_GLOBAL_RE = re.compile(r"GLOBAL ([\w.]+)")


def _read_torch(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError, struct.error, ...
        msg = str(e)
        needs = _GLOBAL_RE.search(msg)
        if needs:
            raise UnsafeCheckpointError(
                f"checkpoint {str(path)!r}: the pickle needs code execution to load (it references "
                f"{needs.group(1)}), which torch.load(weights_only=True) refuses. If you trust the file, load "
                "it yourself and pass its state_dict() to tunify.zoo.load, or re-save it as safetensors."
            ) from None
        if "zip archive" in msg or "central directory" in msg:
            problem = "truncated or corrupt zip archive"
        elif isinstance(e, EOFError) or "unpack requires" in msg or "Ran out of input" in msg:
            problem = "truncated file (unexpected end of data)"
        else:
            problem = "corrupt or unreadable PyTorch checkpoint"
        detail = msg.strip().splitlines()[-1] if msg.strip() else type(e).__name__
        raise CheckpointError(f"checkpoint {str(path)!r}: {problem} ({type(e).__name__}: {detail})") from None


def unwrap_state_dict(
    obj: Any, *, prefix: str | None = None, strict: bool = True, source: str | os.PathLike[str] | None = None
) -> dict[str, torch.Tensor]:
    """The flat `{key: tensor}` state dict inside a checkpoint, as a new dict (the input is never mutated).

    Strips framework wrappers (`params_ema` preferred over `params`, ...), then the `prefix` if given (keys
    without it are dropped, e.g. the `input`/`output` tensors of a fixture file saved with prefix `model.`),
    then a `module.` prefix shared by every key. Non-tensor entries are an error when `strict`, dropped otherwise.
    """
    where = _where(source)
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{where}: expected a state dict (a mapping of names to tensors), got {type(obj).__name__}"
        )
    sd: Mapping[str, Any] = obj
    for key in WRAPPER_KEYS:
        inner = sd.get(key)
        if isinstance(inner, Mapping) and inner and any(isinstance(v, torch.Tensor) for v in inner.values()):
            sd = inner
            break
    if prefix:
        sd = {k[len(prefix) :]: v for k, v in sd.items() if isinstance(k, str) and k.startswith(prefix)}
        if not sd:
            raise CheckpointError(f"{where}: no key starts with prefix {prefix!r}")
    out = dict(sd)
    for p in COMMON_PREFIXES:
        if out and all(isinstance(k, str) and k.startswith(p) for k in out):
            out = {k[len(p) :]: v for k, v in out.items()}
    bad = [k for k, v in out.items() if not isinstance(v, torch.Tensor)]
    if bad and strict:
        raise CheckpointError(
            f"{where}: entries that are not tensors: {bad[:8]}{' ...' if len(bad) > 8 else ''} "
            "(pass strict=False to ignore them, or prefix= to select the weights)"
        )
    out = {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}
    if not out:
        raise CheckpointError(f"{where}: contains no tensors")
    return out


def read_state_dict(
    path_or_state_dict: str | os.PathLike[str] | Mapping[str, Any],
    *,
    prefix: str | None = None,
    strict: bool = True,
) -> dict[str, torch.Tensor]:
    """The checkpoint's flat state dict (CPU tensors), read safely and unwrapped as in `load`.

    A path that is not a file may be an official checkpoint's name: it is then fetched (`official.fetch`).
    """
    if isinstance(path_or_state_dict, (str, os.PathLike)):
        path = Path(path_or_state_dict)
        if not path.exists():
            path = fetch(path_or_state_dict)
        return unwrap_state_dict(_read_file(path), prefix=prefix, strict=strict, source=path)
    return unwrap_state_dict(path_or_state_dict, prefix=prefix, strict=strict)


_UNEXPECTED_RE = re.compile(r'Unexpected key\(s\) in state_dict: ((?:"[^"]*"(?:, )?)+)')


def _unexpected_keys(err: RuntimeError) -> list[str]:
    m = _UNEXPECTED_RE.search(str(err))
    return re.findall(r'"([^"]*)"', m.group(1)) if m else []


def _spandrel_load(sd: dict[str, torch.Tensor], where: str) -> Any:
    import spandrel

    try:
        return spandrel.MAIN_REGISTRY.load(dict(sd))  # spandrel may pop/rename keys: give it a copy
    except spandrel.UnsupportedModelError:
        sample = ", ".join(list(sd)[:6])
        raise UnknownArchitectureError(
            f"{where}: unknown architecture: spandrel {spandrel.__version__} recognises none of its "
            f"{len(spandrel.MAIN_REGISTRY)} architectures (SwinIR, NAFNet, ...) in these keys ({sample}, ...)"
        ) from None


_STACK_KEY = re.compile(r"^(\d+)\.(weight|bias)$")


def _bare_stack(sd: Mapping[str, torch.Tensor]) -> list[torch.Tensor] | None:
    """The weights of a bare ``nn.Sequential`` of 3×3 convolutions with ReLUs between them (keys ``0.weight,
    0.bias, 2.weight, …``) of constant width, else None."""
    found = [_STACK_KEY.match(k) for k in sd]
    if not found or not all(found):
        return None
    indices = sorted({int(m.group(1)) for m in found if m})
    if indices != list(range(0, 2 * len(indices), 2)) or len(sd) != 2 * len(indices) or len(indices) < 3:
        return None
    weights = [sd[f"{i}.weight"] for i in indices]
    if any(w.ndim != 4 or tuple(w.shape[-2:]) != (3, 3) for w in weights):
        return None
    width = weights[0].shape[0]
    if any(tuple(w.shape[:2]) != (width, width) for w in weights[1:-1]) or weights[-1].shape[1] != width:
        return None
    return weights


def _bare_stack_spec(sd: Mapping[str, torch.Tensor]) -> tuple[dict[str, Any], dict[str, torch.Tensor]] | None:
    """(spec, state dict) for an original DnCNN or FFDNet release, which spandrel does not recognise.

    Both are bare 3×3 conv stacks (:func:`_bare_stack`). DnCNN (CDnCNN-B, the blind grey DnCNN) maps c to c
    channels, c being 1 or 3, and predicts the noise: spandrel's DnCNN in residual mode (clean = noisy −
    stack(noisy)). FFDNet maps 4c + 1 channels (four sub-images and a noise-level map) to 4c:
    :class:`~tunify.zoo.ffdnet.FFDNet`.
    """
    weights = _bare_stack(sd)
    if weights is None:
        return None
    (width, first), last = weights[0].shape[:2], weights[-1].shape[0]
    if first == last and first in (1, 3):
        kwargs = {"in_nc": first, "out_nc": first, "nc": width, "nb": len(weights), "act_mode": "R"}
        spec = {"architecture": "DnCNN", "kwargs": {**kwargs, "mode": "DnCNN"}}
    elif first == last + 1 and last in (4, 12):
        spec = {
            "architecture": f"{OWN_PREFIX}FFDNet",
            "kwargs": {"in_nc": last // 4, "nc": width, "nb": len(weights)},
        }
    else:
        return None
    return spec, {f"model.{k}": v for k, v in sd.items()}


def load(
    path_or_state_dict: str | os.PathLike[str] | Mapping[str, Any],
    *,
    strict: bool = True,
    prefix: str | None = None,
    device: str | torch.device | None = None,
    spec: dict[str, Any] | ArchSpec | None = None,
) -> nn.Module:
    """The plain network of an official checkpoint, in eval mode, with its architecture detected by spandrel.

    Accepts a path (.pth/.pt/.ckpt with or without `params`/`params_ema` wrappers, or .safetensors), the file
    name of an official checkpoint (`official.OFFICIAL`; downloaded once into the torch hub cache) or an
    in-memory state dict. `prefix` selects and strips a key prefix (fixtures keep weights under `model.`).
    With `strict=False`, entries the detected network does not have are ignored; keys it needs must exist,
    since spandrel infers the hyper-parameters from them. `describe(model)` gives the detected spec.
    With `spec` (e.g. `{"architecture": "timm:resnet18", "kwargs": {}}`) detection is skipped: the network
    is built from the spec and the weights loaded into it, with `strict` as in `load_state_dict`.
    """
    source = path_or_state_dict if isinstance(path_or_state_dict, (str, os.PathLike)) else None
    where = _where(source)
    sd = read_state_dict(path_or_state_dict, prefix=prefix, strict=strict)
    if spec is not None:
        return _load_into_spec(sd, spec, strict, where, device)
    stack = _bare_stack_spec(sd)
    if stack is not None:
        return _load_into_spec(stack[1], stack[0], True, where, device)
    try:
        descriptor = _spandrel_load(sd, where)
    except RuntimeError as e:
        extra = _unexpected_keys(e)
        if strict or not extra or "Missing key" in str(e) or "size mismatch" in str(e):
            raise CheckpointError(f"{where}: the weights do not fit the detected architecture: {e}") from None
        sd = {k: v for k, v in sd.items() if k not in set(extra)}
        try:
            descriptor = _spandrel_load(sd, where)
        except RuntimeError as e2:
            raise CheckpointError(
                f"{where}: the weights do not fit the detected architecture: {e2}"
            ) from None
    model: nn.Module = descriptor.model
    if device is not None:
        model.to(device)
    return model.eval()


def _load_into_spec(
    sd: dict[str, torch.Tensor],
    spec: dict[str, Any] | ArchSpec,
    strict: bool,
    where: str,
    device: str | torch.device | None,
) -> nn.Module:
    model = build(spec)
    try:
        load_state(model, sd, strict=strict)
    except RuntimeError as e:
        arch = ArchSpec.from_dict(spec).architecture
        raise CheckpointError(f"{where}: the weights do not fit the given {arch} spec: {e}") from None
    if device is not None:
        model.to(device)
    return model.eval()
