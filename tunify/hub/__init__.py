"""tunify.hub: save, publish and load tunable models (config.json + model.safetensors + model card).

tmodel.save_pretrained("out/")                  # or tunify.hub.save_pretrained(tmodel, "out/", sweep_dir=...)
tmodel.push_to_hub("me/tunable-dncnn")          # one commit through huggingface_hub
tmodel = tunify.from_pretrained("me/tunable-dncnn")   # or a local folder; strict, safetensors only
"""

from __future__ import annotations

from .assets import SAMPLE_IMAGE, embedded_model_dir
from .card import render_card
from .config import INFO_SCHEMA, HubError, build_config, describe_base, validate_info
from .io import from_pretrained, push_to_hub, read_config, save_pretrained

__all__ = [
    "INFO_SCHEMA",
    "SAMPLE_IMAGE",
    "HubError",
    "build_config",
    "describe_base",
    "embedded_model_dir",
    "from_pretrained",
    "push_to_hub",
    "read_config",
    "render_card",
    "save_pretrained",
    "validate_info",
]
