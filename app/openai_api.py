"""The notes behind an OpenAI-compatible API: any chat client that speaks it (Open WebUI, an editor's assistant,
the ``openai`` Python package) can ask them.

    POST /v1/chat/completions   streamed (server-sent events) or not
    GET  /v1/models             the models below

Models:

- ``mathrag``: the app's answer from the notes (the default generator), with its citations;
- ``mathrag/<generator>``: the same, written by one of the installed generators (``mathrag/smollm2``, ...);
- ``<generator>`` for each installed language model (``smollm2``, ``scratch``, ``smollm2+lora:<name>``): the
  model itself, answering the messages as given, with no notes and no check. This makes mathrag a local model
  server for other tools, and lets the project's own ``openai:`` generator be tested against a real server.

An answer from the notes is the *checked* answer: the generator's draft is checked sentence by sentence against
the passages it cites before any of it is sent, so a streamed answer arrives after the check (the first event,
the assistant's role, is sent at once). Its content is the answer in Markdown followed by a "Sources" list, so any
client shows the citations; the same sources, structured, are in the extra field ``mathrag`` of the response (of
the last chunk when streamed)::

    {"answered": true, "asks": "formula", "generator": "composed", "support": "2 of 2 sentences supported ...",
     "citations": [{"number": 1, "source": "corpus/...md", "heading": "Note > Section", "title": "Note"}]}

The earlier turns of the conversation are passed on as history, as in the app. The API answers this machine only,
unless an API key is set: then every request must carry ``Authorization: Bearer <key>``, from anywhere.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from app.conversations import with_sources
from app.engine import Engine, answer_record
from rag.generators import GeneratorError, get_generator
from rag.options import AskOptions

MODEL = "mathrag"
NOTELESS = ("composed", "extractive")  # generators that only rewrite the notes: no model to serve on its own
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


class RequestError(ValueError):
    """A request the API cannot take: answered with OpenAI's error object and this HTTP status."""

    def __init__(self, message: str, status: int = 400, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.param, self.code = status, param, code

    def response(self) -> JSONResponse:
        kind = {401: "authentication_error", 403: "permission_error", 404: "invalid_request_error"}.get(
            self.status, "invalid_request_error")
        return JSONResponse({"error": {"message": str(self), "type": kind, "param": self.param, "code": self.code}},
                            status_code=self.status)


def model_ids(engine: Engine) -> list[str]:
    """``mathrag``, ``mathrag/<generator>`` for every generator, and each local language model by its name."""
    raw = [g for g in engine.generators if g not in NOTELESS and not g.startswith("openai:")]
    return [MODEL, *(f"{MODEL}/{g}" for g in engine.generators), *raw]


def _text(content) -> str:
    """A message's text: a string, or the text parts of a list of parts (as newer clients send)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    raise RequestError("each message's content must be a string or a list of text parts", param="messages")


def parse_request(body, engine: Engine) -> dict:
    """The checked fields of a chat-completions request: model, messages (role, text), stream, options."""
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    model = body.get("model")
    if model not in model_ids(engine):
        raise RequestError(f"the model '{model}' does not exist here; GET /v1/models lists them", status=404,
                           param="model", code="model_not_found")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise RequestError("messages must be a non-empty list of {role, content} objects", param="messages")
    turns = [{"role": m.get("role"), "content": _text(m.get("content", ""))} for m in messages]
    if turns[-1]["role"] != "user" or not turns[-1]["content"].strip():
        raise RequestError("the last message must be the user's, and not empty", param="messages")
    if body.get("n", 1) != 1:
        raise RequestError("only one choice (n=1) is given", param="n")
    options: dict = {}
    tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if tokens is not None:
        options["max_new_tokens"] = tokens
    if body.get("temperature") is not None:
        options["temperature"] = body["temperature"]
    try:
        AskOptions().but(**options)  # the same limits as the app's sliders
    except (TypeError, ValueError) as exc:
        raise RequestError(str(exc), param=next(iter(options), None)) from None
    return {"model": model, "turns": turns, "stream": bool(body.get("stream")), "options": options}


# --------------------------------------------------------------------------- answering


def answer_from_notes(engine: Engine, request: dict) -> Iterator[tuple[str, dict | None]]:
    """(content, None) pieces of the checked answer and its sources, then ("", the ``mathrag`` field)."""
    generator = request["model"].partition("/")[2] or engine.generators[0]
    turns = request["turns"]
    history = [t for t in turns[:-1] if t["role"] in ("user", "assistant")]
    *_, final = engine.ask(turns[-1]["content"], history, generator=generator, **request["options"])  # checked
    record = answer_record(final)
    for piece in _pieces(with_sources(final.text, record["citations"])):
        yield piece, None
    yield "", record


def answer_raw(engine: Engine, request: dict) -> Iterator[tuple[str, dict | None]]:
    """The language model's own reply to the messages, streamed as it is written (no notes, no check)."""
    generator = get_generator(request["model"], engine.settings)
    options = AskOptions().but(**request["options"])
    for delta in generator.stream(request["turns"], max_new_tokens=options.max_new_tokens,
                                  temperature=options.temperature):
        yield delta, None


def _pieces(text: str, size: int = 48) -> Iterator[str]:
    """The text in short pieces that end at a space, as a model's stream would arrive."""
    start = 0
    while start < len(text):
        end = text.find(" ", start + size)
        end = len(text) if end < 0 else end + 1
        yield text[start:end]
        start = end


# --------------------------------------------------------------------------- the HTTP side


def _completion(request: dict, pieces: Iterator[tuple[str, dict | None]]) -> dict:
    text, extra = "", None
    for piece, record in pieces:
        text += piece
        extra = record or extra
    body = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": request["model"], "usage": None,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}
    if extra is not None:
        body[MODEL] = extra
    return body


def _events(request: dict, pieces: Iterator[tuple[str, dict | None]]) -> Iterator[str]:
    """Server-sent events: the role at once, the content pieces, a last chunk with the finish reason."""
    head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": request["model"]}

    def event(delta: dict, finish: str | None = None, **extra) -> str:
        chunk = {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    yield event({"role": "assistant", "content": ""})
    record = None
    try:
        for piece, found in pieces:
            record = found or record
            if piece:
                yield event({"content": piece})
    except (GeneratorError, ValueError) as exc:  # the stream has begun: the error is its last event
        yield f"data: {json.dumps({'error': {'message': str(exc), 'type': 'server_error'}})}\n\n"
        return
    yield event({}, "stop", **({MODEL: record} if record is not None else {}))
    yield "data: [DONE]\n\n"


def create_api(engine: Engine, api_key: str | None = None, concurrency: int = 2, shared: bool = False) -> Starlette:
    """The ASGI app with ``/chat/completions`` and ``/models`` (mount it at ``/v1``). ``shared``: the server is also
    reached through a public share link, whose requests arrive from this machine; then only a key lets one in."""
    busy = threading.BoundedSemaphore(concurrency)  # answers computed at once; the others wait their turn

    def allowed(request: Request) -> None:
        if api_key:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
                raise RequestError("a valid API key is needed: Authorization: Bearer <key>", status=401,
                                   code="invalid_api_key")
        elif shared or (request.client.host if request.client else "") not in LOOPBACK:
            raise RequestError("this API answers only this machine; start mathrag with --api-key to serve others",
                               status=403)

    def serialized(pieces: Iterator) -> Iterator:
        with busy:
            yield from pieces

    async def models(request: Request):
        try:
            allowed(request)
        except RequestError as exc:
            return exc.response()
        created = int(time.time())
        return JSONResponse({"object": "list", "data": [
            {"id": m, "object": "model", "created": created, "owned_by": MODEL} for m in model_ids(engine)]})

    async def completions(request: Request):
        try:
            allowed(request)
            try:
                body = await request.json()
            except ValueError:
                raise RequestError("the request body is not JSON") from None
            parsed = parse_request(body, engine)
        except RequestError as exc:
            return exc.response()
        answer = answer_raw if parsed["model"] in engine.generators else answer_from_notes
        pieces = serialized(answer(engine, parsed))
        if parsed["stream"]:
            return StreamingResponse(_events(parsed, pieces), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        try:
            return JSONResponse(await run_in_threadpool(_completion, parsed, pieces))
        except (GeneratorError, ValueError) as exc:
            return RequestError(str(exc), status=502 if isinstance(exc, GeneratorError) else 400).response()

    return Starlette(routes=[Route("/models", models, methods=["GET"]),
                             Route("/chat/completions", completions, methods=["POST"])])
