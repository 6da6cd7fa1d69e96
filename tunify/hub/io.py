"""save_pretrained / from_pretrained / push_to_hub for converted models.

A saved model is a folder (or a Hub repo) with ``config.json``, ``model.safetensors`` and ``README.md``.
Loading rebuilds the base network from the config (zoo or timm) or takes the user's, converts it with the
recorded spec, and loads the weights strictly. Nothing but those two files is ever read: no pickle, no code.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import HfApi, constants, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import get_session, validate_repo_id
from torch import nn

from .._atomic import temp_dir_beside
from ..convert import CheckpointError, TunableModel, apply_spec, read_checkpoint, save
from ..convert.io import load_strict
from ..zoo.spec import TIMM_PREFIX
from .card import render_card
from .config import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    HubError,
    OmegaEffect,
    build_config,
    read_config_file,
    rebuild_base,
)

SWEEP_FILES = ("tuning_strip.png", "psnr_vs_omega.png", "sweep.json", "sweep.md")
PICKLE_SUFFIXES = (".bin", ".pth", ".pt", ".ckpt", ".pkl")
#: Seconds the Hub gets to answer before a download is treated as offline (cache only).
PROBE_TIMEOUT_S = 2.0


def save_pretrained(
    tmodel: TunableModel,
    save_directory: str | os.PathLike,
    *,
    omega_effects: Sequence[OmegaEffect] | None = None,
    sweep_dir: str | os.PathLike | None = None,
    repo_id: str | None = None,
) -> Path:
    """Write ``config.json``, ``model.safetensors`` and ``README.md`` (plus the sweep figures) to a folder.

    ``omega_effects`` documents each ω_i for the card, ``tunify info`` and whoever loads the model: one
    entry per ω_i, either what moving it to 1 does (``"stronger denoising"``) or a ``(name, effect)`` pair;
    it replaces ``tmodel.info["objectives"]`` in the saved config (``tmodel`` itself is left as it is).
    Files are written to a temporary folder beside the target and renamed into place, so an interrupted
    save never leaves a half-written model. ``repo_id`` only names the model in the card's examples.
    """
    target = Path(save_directory)
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"{target}: exists and is not a folder")
    sweep = Path(sweep_dir) if sweep_dir is not None else None
    if sweep is not None and not sweep.is_dir():
        raise FileNotFoundError(f"sweep folder not found: {sweep}")
    config = build_config(tmodel, omega_effects)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir_beside(target)
    try:
        (tmp / CONFIG_NAME).write_text(
            json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        save(tmodel, tmp / WEIGHTS_NAME)
        if sweep is not None:
            for name in SWEEP_FILES[:3]:
                if (sweep / name).is_file():
                    shutil.copyfile(sweep / name, tmp / name)
        render_card(config, repo_id or target.name, sweep).save(tmp / "README.md")
        if not target.exists():
            os.replace(tmp, target)
        else:
            for item in tmp.iterdir():
                os.replace(item, target / item.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def push_to_hub(
    tmodel: TunableModel,
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str = "Upload tunable model with tunify",
    omega_effects: Sequence[OmegaEffect] | None = None,
    sweep_dir: str | os.PathLike | None = None,
) -> str:
    """Create the repo if needed and upload the :func:`save_pretrained` folder as one commit; returns its URL."""
    api = HfApi(token=token)
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_pretrained(
            tmodel, Path(tmp) / "model", omega_effects=omega_effects, sweep_dir=sweep_dir, repo_id=repo_id
        )
        repo_url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        repo_id = getattr(repo_url, "repo_id", None) or repo_id
        commit = api.upload_folder(
            repo_id=repo_id, folder_path=folder, commit_message=commit_message, repo_type="model"
        )
    return str(getattr(commit, "commit_url", commit))


def _refuse_pickles(folder: Path) -> None:
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    found = f"; found {pickles}, which tunify never loads (pickles can run code)" if pickles else ""
    raise HubError(f"{folder}: no {WEIGHTS_NAME}{found}")


def _hub_reachable(endpoint: str) -> bool:
    """Whether the Hub answers at all (any HTTP status), within :data:`PROBE_TIMEOUT_S`.

    huggingface_hub retries a failed download with back-off when nothing is cached (about half a minute
    offline); one short probe first lets an offline call go straight to the cache, or to the error.
    """
    try:
        get_session().head(endpoint, timeout=PROBE_TIMEOUT_S, follow_redirects=False)
    except Exception:  # any transport failure (refused, DNS, timeout, proxy): the Hub cannot be reached
        return False
    return True


def _download(repo_id: str, filename: str, hub_kwargs: dict[str, Any]) -> Path:
    """One file of a Hub repo through the cache (so it works offline once downloaded), with named errors."""
    where = f"{repo_id}/{filename}"
    offline = ""
    online = not (hub_kwargs.get("local_files_only") or constants.is_offline_mode())
    if online and not _hub_reachable(constants.ENDPOINT):
        hub_kwargs = {**hub_kwargs, "local_files_only": True}
        offline = f"; {constants.ENDPOINT} does not answer"
    try:
        return Path(
            hf_hub_download(repo_id, filename, repo_type="model", library_name="tunify", **hub_kwargs)
        )
    except RepositoryNotFoundError:
        raise HubError(f"{repo_id}: no such model repo on the Hub (or it is private: pass token=)") from None
    except RevisionNotFoundError:
        raise HubError(f"{repo_id}: no revision {hub_kwargs.get('revision')!r}") from None
    except LocalEntryNotFoundError:
        hint = (
            "; tunify loads safetensors only and never pytorch_model.bin or .pth pickles"
            if filename == WEIGHTS_NAME
            else ""
        )
        raise HubError(
            f"{where}: not a local folder, not in the Hugging Face cache, and the Hub cannot be reached "
            f"(offline or local_files_only{offline}){hint}"
        ) from None
    except EntryNotFoundError:
        hint = "; tunify loads safetensors only, never .bin/.pth pickles" if filename == WEIGHTS_NAME else ""
        raise HubError(f"{where}: the repo has no such file{hint}") from None
    except (HfHubHTTPError, OSError) as error:
        raise HubError(f"{where}: download failed ({error})") from None


def _resolve(
    repo_id_or_dir: str | os.PathLike, files: tuple[str, ...], hub_kwargs: dict[str, Any]
) -> list[Path]:
    """Local paths of ``files``: from the folder if it exists (a local folder wins), else from the Hub."""
    path = Path(repo_id_or_dir)
    if path.is_dir():
        found = [path / name for name in files]
        if WEIGHTS_NAME in files and not (path / WEIGHTS_NAME).is_file():
            _refuse_pickles(path)
        return found
    if path.exists():
        raise HubError(f"{path}: is a file; expected a folder written by save_pretrained, or a Hub repo id")
    try:
        validate_repo_id(str(repo_id_or_dir))
    except HFValidationError:
        raise HubError(f"{str(repo_id_or_dir)!r}: no such folder, and not a valid Hub repo id") from None
    return [_download(str(repo_id_or_dir), name, hub_kwargs) for name in files]


def read_config(
    repo_id_or_dir: str | os.PathLike,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | None = None,
) -> dict[str, Any]:
    """The validated ``config.json`` of a saved model, without reading its weights."""
    hub_kwargs = dict(revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token)
    (config_path,) = _resolve(repo_id_or_dir, (CONFIG_NAME,), hub_kwargs)
    return read_config_file(config_path)


def _rebuild_hint(config: dict[str, Any], model: nn.Module | None) -> str:
    """What to do when a timm network rebuilt from its name does not fit: timm records no keywords, and
    ``describe_base`` reads back only the usual ones."""
    architecture = config["base"]["architecture"]
    if model is not None or not architecture.startswith(TIMM_PREFIX):
        return ""
    call = f"timm.create_model({architecture[len(TIMM_PREFIX) :]!r}, **{config['base'].get('kwargs', {})})"
    return (
        f". The network was rebuilt as {call}; if it was created with other keywords, create it the same "
        "way and pass it as model="
    )


def from_pretrained(
    repo_id_or_dir: str | os.PathLike,
    model: nn.Module | None = None,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | None = None,
    map_location: str | torch.device = "cpu",
) -> TunableModel:
    """Load a model written by :func:`save_pretrained`, from a local folder or a Hub repo id, strictly.

    The base network is rebuilt from ``config.json`` (zoo/spandrel or timm architectures) unless ``model``
    (the plain, unconverted network; converted in place) is given, which custom architectures require.
    Returns the :class:`TunableModel` in eval mode with its ``info`` restored.
    """
    hub_kwargs = dict(revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token)
    config_path, weights_path = _resolve(repo_id_or_dir, (CONFIG_NAME, WEIGHTS_NAME), hub_kwargs)
    config = read_config_file(config_path)
    base = model if model is not None else rebuild_base(config, str(config_path))
    try:
        tmodel = apply_spec(base, config["conversion"])
    except CheckpointError as error:
        raise HubError(f"{config_path}: {error}{_rebuild_hint(config, model)}") from None
    state, file_spec = read_checkpoint(weights_path)
    expected = config["conversion"]
    keys = ("p", "layers", "tensors", "strategy", "strategy_options")
    if any(file_spec.get(k) != expected.get(k) for k in keys):
        raise HubError(
            f"{weights_path}: its conversion spec differs from {config_path}; the two were not saved together"
        )
    try:
        load_strict(tmodel, state, str(weights_path))
    except CheckpointError as error:
        raise HubError(f"{error}{_rebuild_hint(config, model)}") from None
    tmodel.info = config["info"]
    return tmodel.to(map_location).eval()
