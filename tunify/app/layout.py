"""The page: gradio components and how their events reach :mod:`tunify.app.session`.

Slider counts depend on the model, which can be changed in the page, so the page holds ``MAX_SLIDERS``
ω sliders (and as many for the painted region) and shows the model's; every handler turns bad input into
``gr.Error`` (a message in the page) and never takes the server down.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from typing import Any

import gradio as gr
import numpy as np

from ..cli._common import parse_omega
from ..cli.info import map_line
from ..data import to_uint8
from ..hub import SAMPLE_IMAGE
from .controls import OmegaControls
from .session import MAX_PIXELS, AppError, Picture, Settings, Tuner, open_picture
from .shown import ShownImages
from .spatial import mask_from_layers

MAX_SLIDERS = 8
MAX_KNOBS = 2  # degradation levels: σ and ρ
CACHE_SIZE = 2  # loaded models kept in memory
TILES = gr.Progress(track_tqdm=True)  # the download's tile progress bar (tiled_forward's tqdm) in the page


def _shown(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Bad input becomes an error in the page; the handler's other outputs are left as they were."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except (AppError, ValueError, OSError) as error:
            raise gr.Error(str(error)) from None
        except Exception as error:  # a bug: still one message, and the server goes on serving
            raise gr.Error(f"internal error {type(error).__name__}: {error}") from None

    return wrapper


class Models:
    """Loaded models by name, the most recent ``CACHE_SIZE`` kept (visitors share them)."""

    def __init__(self, first: Tuner) -> None:
        self._tuners: dict[str | None, Tuner] = {first.name: first}
        self.default = first.name

    def get(self, name: str | None) -> Tuner:
        name = (name or "").strip() or None
        if name not in self._tuners:
            first = next(iter(self._tuners.values()))
            tuner = Tuner.load(
                name, preview_side=first.preview_side, preview_precision=first.preview_precision
            )
            self._tuners[name] = tuner
            while len(self._tuners) > CACHE_SIZE:
                del self._tuners[next(iter(self._tuners))]
        return self._tuners[name]


def _slider_updates(controls: OmegaControls, values: list[float] | None = None) -> list[Any]:
    """Label, info, value and visibility of all ``MAX_SLIDERS`` sliders for a model."""
    sliders = controls.sliders(values and controls.omega(values))
    return [
        gr.update(visible=True, label=s.label, info=s.info, value=round(s.value, 4))
        if i < len(sliders)
        else gr.update(visible=False)
        for i, s in enumerate(sliders + [None] * (MAX_SLIDERS - len(sliders)))  # type: ignore[operator]
    ]


def region_default(controls: OmegaControls) -> list[float]:
    """The painted region starts at the other end of the range: the last objective alone (all 1: free)."""
    if controls.mode == "independent":
        return [1.0] * controls.p
    return [0.0] * (controls.p - 1) + [1.0]


def build_app(tuner: Tuner, max_pixels: int = MAX_PIXELS) -> gr.Blocks:
    """The app for ``tuner``'s model (other models can be loaded in the page)."""
    models = Models(tuner)
    shown_file = ShownImages()  # what the page shows, as files gradio copies safely

    def settings(tuner: Tuner, synthetic: bool, values: list[Any]) -> Settings:
        """What the page's controls say (``values``: knobs, ω sliders, region sliders, then the editor)."""
        n = len(tuner.controls.sliders())
        omega = tuner.controls.omega(values[MAX_KNOBS : MAX_KNOBS + n])
        region = tuner.controls.omega(values[MAX_KNOBS + MAX_SLIDERS : MAX_KNOBS + MAX_SLIDERS + n])
        mask = mask_from_layers((values[-1] or {}).get("layers") or [])  # at the shown input's size
        return Settings(omega, region if mask is not None else None, mask, _levels(tuner, synthetic, values))

    def result(picture: Picture | None, name: str, synthetic: bool, *values: Any) -> tuple[Any, str]:
        if picture is None:
            return gr.update(), "Open an image (or use the sample) to see the result."
        tuner = models.get(name)
        res = tuner.preview(picture, settings(tuner, synthetic, list(values)))
        timing = f"  \n*{res.after.shape[1]}x{res.after.shape[0]} preview in {res.seconds:.2f} s*"
        return (shown_file(res.before), shown_file(res.after)), res.scores + timing

    def editor_value(
        tuner: Tuner, picture: Picture, synthetic: bool, values: list[Any], layers: list
    ) -> dict:
        x = tuner.preview_input(picture, _levels(tuner, synthetic, values))
        background = to_uint8(x[0]).permute(1, 2, 0).numpy()
        keep = [
            layer
            for layer in layers
            if isinstance(layer, np.ndarray) and layer.shape[:2] == background.shape[:2]
        ]
        return {"background": shown_file(background), "layers": keep, "composite": None}

    with gr.Blocks(title="tunify: tune a model") as app:
        picture = gr.State(None)
        current = gr.State(tuner.name)  # the loaded model: a name that fails to load leaves it unchanged
        painted_state = gr.State(None)  # what the editor's brush last showed the network
        gr.Markdown(
            "# tunify\nOne network, tuned at inference: move the ω sliders, paint regions to give them "
            "their own ω, download the full-resolution result."
        )
        with gr.Row():
            model = gr.Textbox(
                value=tuner.name or "",
                label="Model",
                elem_id="model",
                scale=4,
                placeholder="a save_pretrained folder or Hub repo id (empty: the embedded denoiser)",
            )
            load = gr.Button("Load model", scale=1, elem_id="load")
        about = gr.Markdown(_about(tuner))
        with gr.Row():
            with gr.Column():
                upload = gr.File(
                    label="Open an image", file_types=["image"], type="filepath", elem_id="upload"
                )
                sample = gr.Button("Use the sample image", elem_id="sample")
                synthetic = gr.Checkbox(label="Add a synthetic degradation", elem_id="synthetic")
                knobs = [
                    gr.Slider(
                        0, 75, value=25, step=0.5, label=f"level {k}", visible=False, elem_id=f"level{k}"
                    )
                    for k in range(MAX_KNOBS)
                ]
                editor = gr.ImageEditor(
                    label="Input: paint regions with the brush to give them the region's ω",
                    type="numpy",
                    image_mode="RGBA",
                    sources=(),
                    transforms=(),
                    format="png",
                    brush=gr.Brush(colors=["#ff3b30"], default_size=12, color_mode="fixed"),
                    layers=False,
                    elem_id="editor",
                    height=420,
                )
            with gr.Column():
                compare = gr.ImageSlider(
                    label="Before / after", type="numpy", format="png", elem_id="compare"
                )
                scores = gr.Markdown(elem_id="scores")
        with gr.Row():
            with gr.Column():
                gr.Markdown("### ω of the picture")
                sliders = _slider_group(0.5, "omega")
                typed = gr.Textbox(
                    label="ω, typed (comma-separated, as tunify apply --omega)", elem_id="typed"
                )
            with gr.Column():
                gr.Markdown("### ω of the painted region")
                regions = _slider_group(1.0, "region")
        with gr.Row():
            export = gr.Button("Full-resolution result (PNG)", variant="primary", elem_id="export")
            download = gr.File(label="Download", elem_id="download", interactive=False)

        values = [*knobs, *sliders, *regions]
        shown = [picture, current, synthetic, *values, editor]

        @_shown
        def model_changed(name: str) -> list[Any]:
            tuner = models.get(name)
            knob_updates = [
                gr.update(visible=True, label=k.label, maximum=k.maximum, value=k.value)
                if i < len(tuner.degradation.knobs)
                else gr.update(visible=False)
                for i, k in enumerate([*tuner.degradation.knobs, *[None] * MAX_KNOBS][:MAX_KNOBS])
            ]
            return [
                _about(tuner),
                gr.update(
                    label=f"Add a synthetic degradation (this model's recipe: {tuner.degradation.kind})"
                ),
                *knob_updates,
                *_slider_updates(tuner.controls),
                *_slider_updates(tuner.controls, tuner.controls.values_for(region_default(tuner.controls))),
            ]

        @_shown
        def opened(path: str | None, name: str, synthetic: bool, *values: Any) -> tuple[Picture, dict, None]:
            if path is None:
                raise AppError("no file received")
            pic = open_picture(path, max_pixels)
            tuner = models.get(name)
            h, w = pic.clean.shape[-2:]
            if max(h, w) * tuner.scale > tuner.preview_side:
                gr.Warning(f"{w}x{h}: previewed at reduced size; the full-resolution result is tiled")
            return pic, editor_value(tuner, pic, synthetic, list(values), []), None

        @_shown
        def degraded(pic: Picture | None, name: str, synthetic: bool, *values: Any) -> dict:
            if pic is None:
                return gr.update()
            layers = (values[-1] or {}).get("layers") or []
            return editor_value(models.get(name), pic, synthetic, list(values[:-1]), layers)

        @_shown
        def moved(index: int, name: str, *values: Any) -> list[Any]:
            tuner = models.get(name)
            n = len(tuner.controls.sliders())
            if index >= n:
                return [gr.update()] * MAX_SLIDERS
            rebalanced = tuner.controls.rebalance(list(values[:n]), index)
            return [gr.update(value=round(v, 4)) for v in rebalanced] + [gr.update()] * (MAX_SLIDERS - n)

        @_shown
        def typed_omega(text: str, name: str) -> list[Any]:
            tuner = models.get(name)
            omega = parse_omega(
                text.strip(), tuner.controls.p, tuner.model.config.allow_extrapolation, name="typed ω"
            )
            return [gr.update(value=round(v, 4)) for v in tuner.controls.values_for(omega.tolist())] + [
                gr.update()
            ] * (MAX_SLIDERS - len(tuner.controls.sliders()))

        @_shown
        def exported(progress: gr.Progress = TILES, *inputs: Any) -> str:
            # gradio fills a Progress only in a positional parameter, hence first
            pic, name, synthetic, *values = inputs
            if pic is None:
                raise AppError("open an image first (or use the sample)")
            tuner = models.get(name)
            chosen = settings(tuner, synthetic, list(values))
            return str(tuner.export(pic, chosen))

        @_shown
        def painted(pic: Picture | None, name: str, synthetic: bool, *values: Any) -> tuple[Any, ...]:
            """A brush stroke: render, unless the painted region is what it was (the editor also reports
            its picture being replaced, which changes nothing the network sees)."""
            *values, last = values
            if pic is None:
                return gr.update(), gr.update(), last
            mask = mask_from_layers((values[-1] or {}).get("layers") or [])
            signature = None if mask is None else hashlib.sha1(mask.numpy().tobytes()).hexdigest()
            if signature == last:
                return gr.update(), gr.update(), last
            return (*result(pic, name, synthetic, *values), signature)

        render = _shown(result)
        outputs = [compare, scores]
        updates = [about, synthetic, *knobs, *sliders, *regions]
        editor_inputs = [picture, current, synthetic, *values, editor]
        load.click(lambda name: [name, *model_changed(name)], model, [current, *updates]).success(
            degraded,
            editor_inputs,
            editor,  # the input as the new model sees it (scale, its recipe)
        ).success(render, shown, outputs)
        app.load(model_changed, current, updates)
        upload.upload(
            opened, [upload, current, synthetic, *values], [picture, editor, painted_state]
        ).success(render, shown, outputs)
        sample.click(
            lambda *a: opened(str(SAMPLE_IMAGE), *a),
            [current, synthetic, *values],
            [picture, editor, painted_state],
        ).success(render, shown, outputs)
        for control in (synthetic, *knobs):
            control.input(degraded, editor_inputs, editor).success(
                render, shown, outputs, trigger_mode="always_last"
            )
        for group in (sliders, regions):
            for i, slider in enumerate(group):
                slider.input(
                    functools.partial(moved, i), [current, *group], group, trigger_mode="always_last"
                ).success(render, shown, outputs)
        typed.submit(typed_omega, [typed, current], sliders).success(render, shown, outputs)
        editor.input(painted, [*shown, painted_state], [*outputs, painted_state], trigger_mode="always_last")
        export.click(exported, shown, download)
    return app


def _levels(tuner: Tuner, synthetic: bool, values: tuple | list) -> list[float] | None:
    return [float(v) for v in values[: len(tuner.degradation.knobs)]] if synthetic else None


def _about(tuner: Tuner) -> str:
    c = tuner.controls
    kind = {
        "trade-off": "a trade-off between two objectives (ω on the line ω1 + ω2 = 1)",
        "simplex": f"a mix of {c.p} objectives (ω sums to 1)",
        "independent": f"{c.p} independent knobs",
    }[c.mode]
    scale = f", ×{tuner.scale} upscaling" if tuner.scale > 1 else ""
    task = tuner.config.get("info", {}).get("task", "image-to-image")
    conversion = tuner.config.get("conversion", {})
    regions = f" Painted regions: {map_line(conversion)}." if "map_averaged" in conversion else ""
    return f"**{tuner.title}**: {task}{scale}; ω is {kind}.{regions}"


def _slider_group(value: float, id_prefix: str) -> list[Any]:
    """MAX_SLIDERS hidden ω sliders (shown and labelled once a model is loaded), ids ``<prefix><i>``."""
    return [
        gr.Slider(0, 1, value=value, step=0.01, label=f"ω{i + 1}", visible=False, elem_id=f"{id_prefix}{i}")
        for i in range(MAX_SLIDERS)
    ]
