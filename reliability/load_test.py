"""Load on a running app: many ``gradio_client`` clients at once, and what happens past the queue's bound.

:func:`run_load` starts ``clients`` threads, each with its own
``gradio_client.Client``, and each asks ``questions`` questions one after the
other through the ``/chat`` endpoint, as scripts do. Every request has a time
limit, so a hang counts as an error instead of stalling the run. It reports
errors, answers without sources, latency percentiles and throughput.
:func:`run_load_elsewhere` runs the same clients in a separate process (so they
do not share the server's interpreter), which is how the benchmark measures;
from the shell: ``python -m reliability.load_test http://127.0.0.1:7860/ --clients 20``.

:func:`run_overflow` serves a second app with a tiny queue and sends more
simultaneous requests than it can hold: each must end either answered or with
Gradio's "queue is full" message, within the time limit; none may hang.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from rag.evaluation import percentile

QUESTIONS = (
    "What is the derivative of tanh?",
    "How is the SVD of a matrix defined?",
    "Why does Adam need bias correction?",
    "What does the softmax function do?",
    "What are the singular values of a matrix?",
    "How does Adam adapt the learning rate?",
    "Why is ReLU used in deep networks?",
)


@dataclass
class LoadReport:
    clients: int
    questions_each: int
    generator: str
    requests: int = 0
    answered: int = 0
    errors: int = 0
    without_sources: int = 0
    p50_s: float = 0.0
    p95_s: float = 0.0
    max_s: float = 0.0
    seconds: float = 0.0
    throughput_per_s: float = 0.0
    error_messages: list[str] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)  # every answered or failed request, in order of finish

    def to_dict(self) -> dict:
        return asdict(self)


def run_load(url: str, *, clients: int = 20, questions: int = 5, generator: str = "extractive",
             max_new_tokens: int = 48, timeout: float = 300.0) -> LoadReport:
    """``clients`` concurrent clients x ``questions`` sequential questions each, against ``url``."""
    from gradio_client import Client

    report = LoadReport(clients, questions, generator)
    latencies: list[float] = []
    lock = threading.Lock()
    start_gate = threading.Barrier(clients)

    def client(c: int) -> None:
        try:
            api = Client(url, verbose=False)
        except Exception as exc:  # could not even connect
            with lock:
                report.requests += questions
                report.errors += questions
                report.error_messages.append(f"connect: {exc}"[:200])
            return
        start_gate.wait(timeout=timeout)
        for q in range(questions):
            question = QUESTIONS[(c + q) % len(QUESTIONS)]
            t = time.perf_counter()
            try:
                job = api.submit(question, "hybrid", generator, 5, max_new_tokens, 0.0, api_name="/chat")
                result = job.result(timeout=timeout)
                elapsed = time.perf_counter() - t
                with lock:
                    report.requests += 1
                    latencies.append(elapsed)
                    if result.get("done") and result.get("answer", "").strip():
                        report.answered += 1
                    else:
                        report.errors += 1
                    if not result.get("sources"):
                        report.without_sources += 1
            except Exception as exc:  # a timeout, a dropped connection, an error from the app
                with lock:
                    report.requests += 1
                    report.errors += 1
                    report.error_messages.append(f"{type(exc).__name__}: {exc}"[:200])

    begin = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    report.seconds = round(time.perf_counter() - begin, 2)
    if latencies:
        report.p50_s = round(percentile(latencies, 50), 3)
        report.p95_s = round(percentile(latencies, 95), 3)
        report.max_s = round(max(latencies), 3)
        report.throughput_per_s = round(report.answered / report.seconds, 2)
        report.latencies_s = [round(t, 3) for t in latencies]
    report.error_messages = report.error_messages[:5]
    return report


def run_overflow(engine, port: int, *, requests: int = 10, queue_size: int = 2, timeout: float = 300.0) -> dict:
    """More simultaneous requests than a small queue holds: count answered, told busy, and anything else."""
    from gradio_client import Client

    from app.server import launch

    demo, url = launch(engine, port=port, block=False, queue_size=queue_size, concurrency=1)
    outcomes: list[str] = []
    try:
        def ask(i: int) -> str:
            try:
                job = Client(url, verbose=False).submit(f"{QUESTIONS[i % len(QUESTIONS)]} ({i})", "hybrid",
                                                        "extractive", 5, 32, 0.0, api_name="/chat")
                return "answered" if job.result(timeout=timeout).get("sources") else "no sources"
            except TimeoutError:
                return "hung"
            except Exception as exc:
                text = str(exc)
                return "busy" if "Queue is full" in text and "try again" in text else f"other: {text[:120]}"

        begin = time.perf_counter()
        with ThreadPoolExecutor(requests) as pool:
            outcomes = list(pool.map(ask, range(requests)))
        seconds = time.perf_counter() - begin
        after = Client(url, verbose=False).predict("What is the derivative of tanh?", "hybrid", "extractive",
                                                   api_name="/chat")
    finally:
        demo.close()
    counts = {k: outcomes.count(k) for k in sorted(set(outcomes))}
    return {"requests": requests, "queue_size": queue_size, "outcomes": counts, "seconds": round(seconds, 2),
            "serves_after": bool(after.get("sources")),
            "ok": set(counts) <= {"answered", "busy"} and counts.get("busy", 0) > 0 and bool(after.get("sources"))}



def run_load_elsewhere(url: str, *, clients: int = 20, questions: int = 5, generator: str = "extractive",
                       max_new_tokens: int = 48, timeout: float = 300.0) -> LoadReport:
    """:func:`run_load` from a separate Python process (the clients then compete for CPU, not for the GIL)."""
    args = [sys.executable, "-m", "reliability.load_test", url, "--clients", str(clients),
            "--questions", str(questions), "--generator", generator, "--max-new-tokens", str(max_new_tokens),
            "--timeout", str(timeout)]
    run = subprocess.run(args, capture_output=True, text=True, timeout=timeout * questions + 120)
    if run.returncode != 0:
        raise RuntimeError(f"the load clients failed (rc {run.returncode}): {run.stderr[-400:]}")
    return LoadReport(**json.loads(run.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m reliability.load_test", description="Concurrent gradio_client clients "
                                "against a running mathrag app; prints a JSON report.")
    p.add_argument("url")
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--questions", type=int, default=5, help="asked one after another by each client")
    p.add_argument("--generator", default="extractive")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--timeout", type=float, default=300.0, help="seconds one request may take")
    a = p.parse_args(argv)
    report = run_load(a.url, clients=a.clients, questions=a.questions, generator=a.generator,
                      max_new_tokens=a.max_new_tokens, timeout=a.timeout)
    print(json.dumps(report.to_dict()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
