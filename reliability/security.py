"""No way in: what the source may not do, what the server must refuse, and where the app may connect.

- :func:`scan_sources` reads the project's own modules for loading that can run code
  (pickle, ``torch.load`` without ``weights_only=True``, ``numpy`` with ``allow_pickle=True``,
  ``yaml.load`` without a safe loader, ``trust_remote_code=True``, ``shell=True``, ``eval``).
- :func:`probe_paths` asks a running server for files it must not serve: ``../`` climbs
  (plain and percent-encoded), absolute paths, the project's own files and ``MATHRAG_HOME``.
- :func:`outbound_connections` runs the app in a child process with an audit hook on every
  ``socket.connect`` and reports each address it tried, while it loads, serves and answers:
  with no OpenAI-compatible server configured, every one must be the machine itself.
"""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

from rag.settings import REPO_ROOT

PACKAGES = ("rag", "graphrag", "finetune", "app", "from_scratch")
RULES = {
    "pickle": re.compile(r"^\s*(?:import|from)\s+(?:c?pickle|dill|joblib|shelve)\b|\bpickle\.loads?\(", re.M),
    "torch.load without weights_only=True": re.compile(r"\btorch\.load\((?![^)]*weights_only\s*=\s*True)"),
    "allow_pickle=True": re.compile(r"allow_pickle\s*=\s*True"),
    "yaml.load without a safe loader": re.compile(r"\byaml\.load\((?![^)]*SafeLoader)"),
    "trust_remote_code=True": re.compile(r"trust_remote_code\s*=\s*True"),
    "shell=True": re.compile(r"shell\s*=\s*True"),
    "eval()": re.compile(r"(?<![\w.])eval\("),
    "LangChain dangerous deserialization": re.compile(r"allow_dangerous_deserialization\s*=\s*True"),
}
LOOPBACK = ("127.", "::1", "localhost")


def scan_sources(root: Path = REPO_ROOT, packages: tuple[str, ...] = PACKAGES) -> list[str]:
    """``path:line: rule`` for each violation in the packages' Python files (this file's patterns aside)."""
    found = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            if path.resolve() == Path(__file__).resolve():
                continue
            text = path.read_text(encoding="utf-8")
            for rule, pattern in RULES.items():
                for m in pattern.finditer(text):
                    line = text.count("\n", 0, m.start()) + 1
                    found.append(f"{path.relative_to(root)}:{line}: {rule}")
    return found


TRAVERSALS = (
    "/gradio_api/file=../../../../etc/passwd",
    "/gradio_api/file=..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "/gradio_api/file=/etc/passwd",
    "/file=/etc/passwd",
    "/gradio_api/file={repo}/pyproject.toml",
    "/gradio_api/file={repo}/corpus/linear_algebra/svd.md",
    "/gradio_api/file={home}/index/CURRENT",
    "/static/../../../../etc/passwd",
    "/assets/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "/gradio_api/file=%2Fetc%2Fpasswd",
)


def probe_paths(url: str, home: Path) -> dict[str, int]:
    """Status code for each forbidden request (sent raw, so ``../`` is not tidied away by a client)."""
    parts = urlsplit(url)
    out = {}
    for template in TRAVERSALS:
        path = template.format(repo=REPO_ROOT.as_posix(), home=Path(home).as_posix())
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        try:
            conn.putrequest("GET", path, skip_accept_encoding=True)
            conn.endheaders()
            response = conn.getresponse()
            body = response.read(200_000)
            leaked = b"root:x:" in body or b"[project]" in body or b"---\ntitle:" in body
            out[path] = 200 if leaked else response.status  # 200 only when a file's content came back
        finally:
            conn.close()
    return out


UPLOAD_PATHS = ("/gradio_api/upload", "/gradio_api/upload?upload_id=probe", "/upload", "/gradio_api/upload/")
UPLOAD_BYTES = 20 * 1024 * 1024  # what an anonymous page could send, again and again, to fill the disk


def probe_uploads(url: str, size: int = UPLOAD_BYTES) -> dict[str, int]:
    """Status code for an anonymous multipart upload of ``size`` bytes to each upload path. The app has no
    component that takes a file, so every one must be refused (403, 404, 405 or 413), not stored."""
    parts = urlsplit(url)
    boundary = "mathrag-probe"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"fill.bin\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    out = {}
    for path in UPLOAD_PATHS:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        try:
            conn.putrequest("POST", path)
            conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
            conn.putheader("Content-Length", str(len(head) + size + len(tail)))
            conn.endheaders()
            try:
                conn.send(head)
                chunk = b"\0" * (1 << 20)
                for start in range(0, size, len(chunk)):
                    conn.send(chunk[:min(len(chunk), size - start)])
                conn.send(tail)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server stopped reading: refused early, which is what is wanted
            out[path] = conn.getresponse().status
        except (ConnectionResetError, http.client.RemoteDisconnected):
            out[path] = 403
        finally:
            conn.close()
    return out


_AUDIT_SCRIPT = r"""
import json, os, socket, sys
seen = []
def hook(event, args):
    if event == "socket.connect":
        addr = args[1]
        seen.append(addr[0] if isinstance(addr, tuple) else str(addr))
    elif event == "socket.getaddrinfo":
        seen.append("resolve:" + str(args[0]))
sys.addaudithook(hook)
from gradio_client import Client
from app.engine import Engine
from app.server import launch
engine = Engine.load(warm=False)
demo, url = launch(engine, port=int(sys.argv[1]), block=False)
result = Client(url, verbose=False).predict("What is the derivative of tanh?", "hybrid", "extractive",
                                            api_name="/chat")
demo.close()
print("AUDIT" + json.dumps({"addresses": sorted(set(seen)), "sources": len(result["sources"])}))
"""


def outbound_connections(env: dict[str, str], port: int, timeout: float = 600) -> dict:
    """Every address the app connected to (or resolved) while it loaded, served and answered one question."""
    clean = {k: v for k, v in env.items() if not k.startswith("MATHRAG_OPENAI")}
    run = subprocess.run([sys.executable, "-c", _AUDIT_SCRIPT, str(port)], env=clean, capture_output=True,
                         text=True, timeout=timeout, cwd=REPO_ROOT)
    line = next((x for x in run.stdout.splitlines() if x.startswith("AUDIT")), None)
    if line is None:
        raise RuntimeError(f"the audited app did not finish (rc {run.returncode}): {run.stderr[-400:]}")
    result = json.loads(line[5:])
    addresses = [a.removeprefix("resolve:") for a in result["addresses"]]
    result["outside"] = sorted({a for a in addresses if not a.startswith(LOOPBACK) and a not in ("", "0.0.0.0")})
    return result
