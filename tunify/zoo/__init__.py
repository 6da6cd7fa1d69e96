"""tunify.zoo: the networks users already have — official SwinIR/NAFNet checkpoints (via spandrel) and timm.

model = tunify.zoo.load("001_classicalSR_DF2K_s64w8_SwinIR-M_x2.pth")   # official name (downloaded once) or path
spec = tunify.zoo.describe(model)          # {"architecture": "SwinIR", "kwargs": {...}}
fresh = tunify.zoo.build(spec)             # same network, freshly initialised
net = tunify.zoo.create("nafnet_sidd_w32") # by name; also "timm:resnet18"
tunify.zoo.list()                          # {name: description}
"""

from __future__ import annotations

from .checkpoint import load, read_state_dict, unwrap_state_dict
from .errors import (
    CheckpointError,
    CheckpointNotFoundError,
    UnknownArchitectureError,
    UnknownModelError,
    UnsafeCheckpointError,
    ZooError,
)
from .ffdnet import FFDNet
from .official import OFFICIAL, OfficialCheckpoint, cache_dir, fetch
from .registry import ModelEntry, config, create, list_models, register_config, register_model
from .spec import ArchSpec, build, describe
from .targets import TUNABLE_TARGETS, default_tunable_targets

list = list_models  # shadows the builtin only in this module: `tunify.zoo.list()` reads naturally; the builtin is untouched elsewhere

__all__ = [
    "OFFICIAL",
    "TUNABLE_TARGETS",
    "ArchSpec",
    "CheckpointError",
    "CheckpointNotFoundError",
    "FFDNet",
    "ModelEntry",
    "OfficialCheckpoint",
    "UnknownArchitectureError",
    "UnknownModelError",
    "UnsafeCheckpointError",
    "ZooError",
    "build",
    "cache_dir",
    "config",
    "create",
    "default_tunable_targets",
    "describe",
    "fetch",
    "list",
    "list_models",
    "load",
    "read_state_dict",
    "register_config",
    "register_model",
    "unwrap_state_dict",
]
