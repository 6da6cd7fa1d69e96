"""Start the app: load the model, build the page, serve it."""

from __future__ import annotations

from .layout import build_app
from .session import MAX_PIXELS, PREVIEW_SIDE, Tuner


def launch(
    model: str | None = None,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    preview_side: int = PREVIEW_SIDE,
    max_pixels: int = MAX_PIXELS,
    block: bool = True,
) -> tuple[object, str]:
    """Serve the app for ``model`` (default: the embedded denoiser); returns (gradio Blocks, local URL).

    ``block=False`` returns at once with the server running in a thread (tests, notebooks).
    """
    app = build_app(Tuner.load(model, preview_side=preview_side), max_pixels=max_pixels)
    app.queue(default_concurrency_limit=1)  # one network pass at a time: two would share the same cores
    _, url, _ = app.launch(
        server_name=host, server_port=port, prevent_thread_lock=not block, quiet=not block, show_error=True
    )
    return app, url
