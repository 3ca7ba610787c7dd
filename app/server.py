"""Start the app: load the models once, then serve on 127.0.0.1 with a bounded queue.

Analytics are off, share links are made only on request, and the app serves
no files from disk beyond Gradio's own and the notes' drawn figures (``allowed_paths`` is that one folder).
No component takes a file, so uploads are refused before Gradio reads or stores a byte (:class:`RefuseUploads`):
otherwise any page open in the learner's browser could fill the disk through ``/gradio_api/upload``.
While it serves, a background thread looks for edited notes every few seconds
and brings the index and the graph up to date (:meth:`Engine.refresh`).
"""

from __future__ import annotations

import logging
import os
import threading

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402 - the environment variable must be set before Gradio reads it
from starlette.middleware import Middleware  # noqa: E402
from starlette.responses import PlainTextResponse  # noqa: E402
from starlette.routing import Mount  # noqa: E402

from app.engine import Engine  # noqa: E402
from app.openai_api import create_api  # noqa: E402
from app.ui import CSS, build_ui  # noqa: E402


def create(engine: Engine | None = None, *, queue_size: int = 32, concurrency: int = 2) -> gr.Blocks:
    """The app with its queue configured (not yet serving)."""
    engine = engine or Engine.load()
    demo = build_ui(engine)
    demo.queue(max_size=queue_size, default_concurrency_limit=concurrency)
    return demo


log = logging.getLogger("mathrag")


class RefuseUploads:
    """ASGI middleware: a request to an upload route gets 403 at once; its body is never read."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"].rstrip("/").rsplit("/", 1)[-1] in ("upload", "upload_progress"):
            response = PlainTextResponse("uploads are refused: this app takes no files", status_code=403)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def watch_notes(engine: Engine, every: float, stop: threading.Event) -> threading.Thread:
    """Poll the notes every ``every`` seconds and refresh the engine when they change, until ``stop`` is set."""
    def loop() -> None:
        while not stop.wait(every):
            try:
                engine.refresh()
            except Exception as exc:  # a failed update keeps the current index serving; say why, try later
                log.warning("mathrag: the notes changed but the index could not be updated: %s", exc)

    thread = threading.Thread(target=loop, name="mathrag-watch-notes", daemon=True)
    thread.start()
    return thread


def launch(engine: Engine | None = None, *, host: str = "127.0.0.1", port: int = 7860, share: bool = False,
           queue_size: int = 32, concurrency: int = 2, watch: float = 0.0, block: bool = True,
           api_key: str | None = None):
    """Serve the app, and the OpenAI-compatible API under ``/v1`` on the same port; returns ``(demo, url)`` when
    ``block`` is False.

    ``watch``: seconds between looks for edited notes (0: never). ``api_key``: what ``/v1`` requests must carry
    (without one, ``/v1`` answers this machine only).
    """
    print("mathrag: loading the index and the models...", flush=True)
    engine = engine or Engine.load()
    demo = create(engine, queue_size=queue_size, concurrency=concurrency)
    if watch > 0:
        stop = threading.Event()
        watch_notes(engine, watch, stop)
        demo.close = _also(demo.close, stop.set)
    api = create_api(engine, api_key, concurrency, shared=share)  # /v1 on the same port
    _, url, _ = demo.launch(server_name=host, server_port=port, share=share, prevent_thread_lock=True,
                            quiet=not block, show_error=True, allowed_paths=[str(engine.figures_dir)], css=CSS,
                            footer_links=["api"], max_file_size="1kb",
                            app_kwargs={"middleware": [Middleware(RefuseUploads)],
                                        "routes": [Mount("/v1", api)]})
    if block:
        print(f"mathrag: serving on {url}  (Ctrl+C to stop)", flush=True)
        try:
            demo.block_thread()
        except KeyboardInterrupt:
            pass
        finally:
            demo.close()
    return demo, url


def _also(close, then):
    def both(*args, **kwargs):
        then()
        return close(*args, **kwargs)
    return both


def serve_api(engine: Engine | None = None, *, host: str = "127.0.0.1", port: int = 8000,
              api_key: str | None = None, concurrency: int = 2, block: bool = True):
    """Serve only the OpenAI-compatible API (``mathrag serve``), at ``http://host:port/v1``; returns
    ``(server, url)`` when ``block`` is False (stop it with ``server.should_exit = True``)."""
    import uvicorn
    from starlette.applications import Starlette

    engine = engine or Engine.load()
    app = Starlette(routes=[Mount("/v1", create_api(engine, api_key, concurrency))])
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    url = f"http://{host}:{port}/v1"
    if block:
        print(f"mathrag: the OpenAI-compatible API is at {url}  (Ctrl+C to stop)", flush=True)
        server.run()
        return server, url
    thread = threading.Thread(target=server.run, name="mathrag-api", daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        thread.join(0.05)
    if not server.started:
        raise OSError(f"the API could not start on {host}:{port}")
    return server, url
