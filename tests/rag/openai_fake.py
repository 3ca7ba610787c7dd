"""A scripted OpenAI-compatible chat server: it streams a reply the test chose (a false sentence, a mixed one),
so the support check can be tested on replies no real model can be made to write on cue. The ``openai:`` generator
itself is tested against mathrag's own real ``/v1`` (tests/app/test_openai_api.py)."""

import json
import re
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOpenAI(BaseHTTPRequestHandler):
    """Replies with ``reply`` in three pieces; ``reply = "echo"`` repeats the first sentence of note [1]."""

    requests: list = []
    reply = "The gradient points uphill [1]."

    def do_POST(self):  # noqa: N802 - the http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeOpenAI.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        if body["model"] != "tiny-model":
            self.send_response(404)
            self.end_headers()
            self.wfile.write(b'{"error": "no such model"}')
            return
        reply = FakeOpenAI.reply
        if reply == "echo":
            prompt = body["messages"][-1]["content"]
            note = prompt.split("[1]", 1)[1].split("\n", 2)[1]
            reply = re.split(r"(?<=\.)\s", note)[0].rstrip(".") + " [1]."
        words = reply.split(" ")
        third = max(1, len(words) // 3)
        pieces = [" ".join(words[:third]) + " ", " ".join(words[third:2 * third]) + " ", " ".join(words[2 * third:])]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for piece in pieces:
            event = {"choices": [{"delta": {"content": piece}, "index": 0}]}
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")

    def log_message(self, *args):
        pass


@contextmanager
def fake_openai(reply="The gradient points uphill [1]."):
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeOpenAI.requests, FakeOpenAI.reply = [], reply
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
