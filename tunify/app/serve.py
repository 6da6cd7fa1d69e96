"""Start the app: load the model, build the page, serve it (locally, or as a Hugging Face Space)."""

from __future__ import annotations

import gradio as gr

from .layout import build_app
from .session import MAX_PIXELS, PREVIEW_SIDE, Tuner

MAX_UPLOAD = "300mb"  # a 36-megapixel 16-bit PNG fits


def create(
    model: str | Tuner | None = None,
    *,
    preview_side: int = PREVIEW_SIDE,
    preview_precision: str = "float32",
    max_pixels: int = MAX_PIXELS,
) -> gr.Blocks:
    """The app for ``model`` (a name, default the embedded denoiser, or a loaded Tuner), ready to ``launch()``."""
    if isinstance(model, Tuner):
        tuner = model
    else:
        tuner = Tuner.load(model, preview_side=preview_side, preview_precision=preview_precision)
    app = build_app(tuner, max_pixels=max_pixels)
    app.queue(default_concurrency_limit=1)  # one network pass at a time: two would share the same cores
    return app


def launch(
    model: str | Tuner | None = None,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    preview_side: int = PREVIEW_SIDE,
    preview_precision: str = "float32",
    max_pixels: int = MAX_PIXELS,
    block: bool = True,
) -> tuple[gr.Blocks, str]:
    """Serve the app; returns (the gradio Blocks, its local URL).

    ``block=False`` returns at once with the server running in a thread (tests, notebooks); ``app.close()``
    stops it.
    """
    app = create(model, preview_side=preview_side, preview_precision=preview_precision, max_pixels=max_pixels)
    _, url, _ = app.launch(
        server_name=host,
        server_port=port,
        prevent_thread_lock=not block,
        quiet=not block,
        show_error=True,
        max_file_size=MAX_UPLOAD,  # gradio refuses larger uploads with a message in the page
    )
    return app, url
