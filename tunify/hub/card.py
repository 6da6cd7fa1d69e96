"""The ``README.md`` model card of a saved tunable model, via ``huggingface_hub.ModelCard``.

The card is filled from ``config.json`` (so it never disagrees with what loads) and, when a sweep folder
from ``tunify.evaluate`` is given, embeds its table (``sweep.md``) and links its figures.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from string import Template
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

BASE_TAGS = ["tunify", "tunable-convolutions", "pytorch"]
TASK_TAGS = {
    "denoising": ["image-restoration", "image-denoising"],
    "deblurring": ["image-restoration", "image-deblurring"],
    "super-resolution": ["image-restoration", "super-resolution"],
    "image-classification": ["image-classification"],
}
PIPELINE_TAGS = {
    "denoising": "image-to-image",
    "deblurring": "image-to-image",
    "super-resolution": "image-to-image",
}

TEMPLATE = Template(
    """
# $title
$note
$description

A **tunable** network: one set of weights whose behaviour is chosen at inference by a vector
ω ∈ [0, 1]^$p, after *Tunable Convolutions with Parametric Multi-Loss Optimization* (Maggioni et al.,
CVPR 2023). Made with tunify (`pip install tunify`).

## What ω controls

$objectives

## Base network

- architecture: `$architecture`$kwargs
- original weights: $base_model
- tunable layers: $n_layers layers and $n_tensors tensors with p = $p kernels each (tunify $version)
$results
## How to load and tune

```python
import torch, tunify

$load_line
y = model(x, omega=torch.tensor([$omega_example]))  # x: (B, 3, H, W) in [0, 1]; one ω for the batch
y = model(x, omega=torch.rand(x.shape[0], $p))         # or one ω per image
plain = tunify.bake(model, torch.tensor([$omega_example]))  # an ordinary network fixed at that ω
```

$command_line

Only `config.json` and `model.safetensors` are read: no pickle, no code from this repository.
$details
## Citation

```bibtex
@inproceedings{maggioni2023tunable,
  title     = {Tunable Convolutions with Parametric Multi-Loss Optimization},
  author    = {Maggioni, Matteo and Tanay, Thomas and Babiloni, Francesca and McDonagh, Steven and Leonardis, Ale{\\v{s}}},
  booktitle = {CVPR},
  year      = {2023}
}
```
"""
)


def _objectives_table(info: dict[str, Any], p: int) -> str:
    objectives = {obj.get("omega_index", i): obj for i, obj in enumerate(info.get("objectives", []))}
    lines = ["| ω | objective | what it does |", "|---|---|---|"]
    for i in range(p):
        obj = objectives.get(i, {})
        if not obj:
            lines.append(f"| ω{i + 1} | – | not documented |")
        else:
            lines.append(f"| ω{i + 1} | {obj.get('name') or '–'} | {obj.get('description') or '–'} |")
    return "\n".join(lines)


def _original_weights(info: dict[str, Any]) -> str:
    """The Hub id of the original weights when known, else the checkpoint the fine-tuning started from."""
    if info.get("base_model"):
        return f"[{info['base_model']}](https://huggingface.co/{info['base_model']})"
    if info.get("init"):
        return f"`{info['init']}` (the checkpoint the tunable copies were initialised from)"
    return "not given"


def _command_line(repo_id: str, omega_example: str, custom_class: str | None) -> str:
    """The card's command-line block; a custom network gets only what works without its Python class."""
    if custom_class is not None:
        return (
            f"`tunify apply` / `tunify sweep` cannot rebuild a custom network ({custom_class}): load it in "
            "Python as above. The command line can still describe it:\n\n"
            f"```bash\ntunify info {repo_id}\n```"
        )
    hub_id = repo_id if "/" in repo_id else f"me/{repo_id}"  # a Space loads from the Hub: push first
    return (
        "or from the command line:\n\n```bash\n"
        f"tunify apply image.png --omega {omega_example} --model {repo_id} -o out.png\n"
        f"tunify sweep image.png --model {repo_id} -o strip.png\n"
        f"tunify info {repo_id}\n"
        f"tunify app --model {repo_id}                      # sliders in a browser (pip install 'tunify[app]')\n```\n\n"
        f"To publish that page as a Hugging Face Space, `tunify app --export-space my-space --model {hub_id}` "
        'writes its `app.py`, `requirements.txt` and `README.md` (section "The app" of tunify\'s README); push '
        "the folder as a Space repository (`hf upload me/my-space my-space --repo-type space`)."
    )


def _results(sweep_dir: Path | None) -> str:
    """The sweep tables of every eval set (``sweep.md``, then ``sweeps/*/sweep.md`` in order) and figures."""
    if sweep_dir is None:
        return ""
    parts = ["\n## Results across ω\n"]
    for table in [sweep_dir / "sweep.md", *sorted(sweep_dir.glob("sweeps/*/sweep.md"))]:
        if table.is_file():
            parts.append(table.read_text(encoding="utf-8").strip() + "\n")
    for name, alt in (("tuning_strip.png", "Outputs across ω"), ("psnr_vs_omega.png", "PSNR against ω")):
        if (sweep_dir / name).is_file():
            parts.append(f"![{alt}]({name})\n")
    return "\n".join(parts)


def _details(info: dict[str, Any]) -> str:
    parts = []
    for key, title in (("metrics", "Metrics"), ("training", "Training")):
        if info.get(key):
            parts.append(
                f"\n## {title}\n\n```json\n{json.dumps(info[key], indent=2, ensure_ascii=False)}\n```\n"
            )
    return "".join(parts)


def render_card(config: dict[str, Any], repo_id: str, sweep_dir: Path | None = None) -> ModelCard:
    """The model card of a model whose ``config.json`` is ``config``."""
    info = config.get("info", {})
    base = config["base"]
    p = config["p"]
    task = info.get("task")
    tags = list(dict.fromkeys([*BASE_TAGS, *TASK_TAGS.get(task, []), *info.get("tags", [])]))
    data = ModelCardData(
        library_name="tunify",
        tags=tags,
        license=info.get("license"),
        base_model=info.get("base_model"),
        pipeline_tag=PIPELINE_TAGS.get(task),
    )
    architecture = base["architecture"]
    kwargs = base.get("kwargs")
    omega = [0.5] * p if p != 2 else [0.3, 0.7]
    omega_example = ",".join(f"{w:g}" for w in omega)
    custom_class = base.get("class", "unknown class") if architecture == "custom" else None
    body = TEMPLATE.substitute(
        title=info.get("name") or f"Tunable {architecture} (p = {p})",
        note=f"\n> **{info['note']}**\n" if info.get("note") else "",
        description=info.get("description", ""),
        p=p,
        objectives=_objectives_table(info, p),
        architecture=architecture if architecture != "custom" else f"custom ({base.get('class', '?')})",
        kwargs=f" with `{json.dumps(kwargs)}`" if kwargs else "",
        base_model=_original_weights(info),
        n_layers=len(config["conversion"]["layers"]),
        n_tensors=len(config["conversion"]["tensors"]),
        version=config["tunify_version"],
        results=_results(sweep_dir),
        repo_id=repo_id,
        omega_example=omega_example,
        load_line=(
            f'model = tunify.from_pretrained("{repo_id}")  # rebuilds the network, loads model.safetensors strictly'
            if custom_class is None
            else f'model = tunify.from_pretrained("{repo_id}", model={custom_class.rsplit(".", 1)[-1]}())'
            "  # your network, built as when it was saved"
        ),
        command_line=_command_line(repo_id, omega_example, custom_class),
        details=_details(info),
    )
    body = re.sub(r"\n{3,}", "\n\n", body)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")
