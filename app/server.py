"""Start the app: load the models once, then serve on 127.0.0.1 with a bounded queue.

Analytics are off, share links are made only on request, and the app serves
no files from disk beyond Gradio's own (``allowed_paths`` stays empty).
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402 - the environment variable must be set before Gradio reads it

from app.engine import Engine  # noqa: E402
from app.ui import CSS, build_ui  # noqa: E402


def create(engine: Engine | None = None, *, queue_size: int = 32, concurrency: int = 2) -> gr.Blocks:
    """The app with its queue configured (not yet serving)."""
    engine = engine or Engine.load()
    demo = build_ui(engine)
    demo.queue(max_size=queue_size, default_concurrency_limit=concurrency)
    return demo


def launch(engine: Engine | None = None, *, host: str = "127.0.0.1", port: int = 7860, share: bool = False,
           queue_size: int = 32, concurrency: int = 2, block: bool = True):
    """Serve the app; returns ``(demo, url)`` when ``block`` is False."""
    print("mathrag: loading the index and the models...", flush=True)
    demo = create(engine, queue_size=queue_size, concurrency=concurrency)
    _, url, _ = demo.launch(server_name=host, server_port=port, share=share, prevent_thread_lock=True,
                            quiet=not block, show_error=True, allowed_paths=[], css=CSS,
                            footer_links=["api"])
    if block:
        print(f"mathrag: serving on {url}  (Ctrl+C to stop)", flush=True)
        try:
            demo.block_thread()
        except KeyboardInterrupt:
            pass
        finally:
            demo.close()
    return demo, url
