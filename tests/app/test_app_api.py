"""The app through gradio_client and through its chat function: answers with sources, clear errors."""

import pytest
from gradio_client import Client

from app.engine import available_generators, escape_html
from app.ui import chat_turn

TANH = "corpus/neural_networks/activation_functions.md"


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


def test_predict_answers_with_sources_from_the_notes(client):
    result = client.predict("What is the derivative of tanh?", api_name="/chat")
    assert result["done"] and result["covered"] and result["answer"].strip()
    assert result["sources"] and result["sources"][0]["source"] == TANH


def test_streaming_submit_yields_growing_answers(client):
    job = client.submit("Why does Adam need bias correction?", "hybrid", "smollm2", 5, 48, 0.0, api_name="/chat")
    updates = list(job)
    assert len(updates) >= 2 and not updates[0]["done"] and updates[-1]["done"]
    assert updates[-1]["sources"] and all(s["source"].startswith("corpus/") for s in updates[-1]["sources"])


def test_the_endpoint_is_named_chat(client):
    assert "/chat" in client.view_api(print_info=False, return_format="dict")["named_endpoints"]


def test_only_working_generators_are_offered(engine, dead_endpoint):
    assert engine.generators[:4] == ["composed", "smollm2", "scratch", "extractive"]  # the default first
    assert engine.generators[4] == f"openai:{dead_endpoint}#ghost"  # configured, so offered
    assert available_generators() == ["composed", "smollm2", "scratch", "extractive"]  # not configured: not offered


def turn(engine, message, generator="extractive", history=None):
    return list(chat_turn(engine, message, history or [], "hybrid", generator, 5, 64, 0.0))


def test_a_chat_turn_cites_and_lists_sources(engine):
    steps = turn(engine, "What is the derivative of tanh?")
    history, box, links = steps[-1]
    assert box == "" and history[0] == {"role": "user", "content": "What is the derivative of tanh?"}
    answer = history[1]["content"]
    assert "[1]" in answer and "\\tanh" in answer
    group = history[2]["metadata"]
    assert group["title"].startswith("Sources (") and group["status"] == "done"
    children = [m for m in history[3:] if m["metadata"].get("parent_id") == group["id"]]
    assert children and children[0]["metadata"]["title"].startswith("[1] Activation Functions")
    assert TANH in children[0]["content"]
    assert links["value"] == TANH


def test_follow_up_uses_the_conversation(engine):
    first = turn(engine, "What is the tanh activation function?")[-1][0]
    history = turn(engine, "and what is its derivative?", history=first)[-1][0]
    assert any(TANH in m["content"] for m in history if m.get("metadata", {}).get("parent_id"))


def test_a_dead_endpoint_is_an_error_in_the_chat_and_the_app_keeps_serving(engine, dead_endpoint, client):
    history = turn(engine, "What is the derivative of tanh?", generator=f"openai:{dead_endpoint}#ghost")[-1][0]
    assert history[-1]["content"].startswith("⚠️ cannot reach the OpenAI-compatible server at " + dead_endpoint)
    assert client.predict("What is an eigenvector?", "hybrid", "extractive", api_name="/chat")["sources"]


def test_a_huge_message_is_truncated_with_a_notice(engine):
    history = turn(engine, "What is the derivative of tanh? " * 4000)[-1][0]
    assert history[0]["content"].endswith(" …") and len(history[0]["content"]) < 2100
    assert "only the first 2,000 were used" in history[1]["content"]


def test_html_is_shown_as_text():
    assert escape_html("<script>alert(1)</script> & `a<b` $x<y$") == \
        "&lt;script>alert(1)&lt;/script> &amp; `a<b` $x&lt;y$"


def test_a_full_queue_says_busy_and_recovers(engine, port):
    """Beyond the queue's bound, callers get a clear "queue is full, try again"; nothing hangs or crashes."""
    from concurrent.futures import ThreadPoolExecutor

    from app.server import launch

    demo, url = launch(engine, port=port, block=False, queue_size=1, concurrency=1)
    try:
        def ask(i):
            try:
                Client(url, verbose=False).predict(f"What is the derivative of tanh? ({i})", "hybrid", "smollm2", 5,
                                                   32, 0.0, api_name="/chat")
                return "answered"
            except Exception as exc:  # the client raises on a full queue
                return str(exc)

        with ThreadPoolExecutor(6) as pool:
            outcomes = list(pool.map(ask, range(6)))
        assert "answered" in outcomes
        busy = [o for o in outcomes if o != "answered"]
        assert busy and all("Queue is full" in o and "try again" in o for o in busy), outcomes
        assert Client(url, verbose=False).predict("What is an eigenvector?", "hybrid", "extractive",
                                                  api_name="/chat")["sources"]
    finally:
        demo.close()
