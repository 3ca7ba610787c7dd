"""The OpenAI-compatible API, on the app's own server (under /v1) and served alone, asked with the official
``openai`` client; and the project's ``openai:`` generator run against it, so both sides are real."""

import openai
import pytest
from mathrag_cli import run_mathrag

from app.openai_api import create_api
from app.server import serve_api
from rag.answering import stream_answer
from rag.generators import GeneratorError, get_generator
from rag.options import AskOptions

TANH = "corpus/neural_networks/activation_functions.md"
QUESTION = "What is the derivative of tanh?"


@pytest.fixture(scope="module")
def client(app_url):
    return openai.OpenAI(base_url=app_url.rstrip("/") + "/v1", api_key="unused", max_retries=0, timeout=300)


def test_the_models_are_mathrag_and_each_installed_generator(client, engine):
    ids = [m.id for m in client.models.list().data]
    assert ids[0] == "mathrag" and "mathrag/composed" in ids and "mathrag/smollm2" in ids
    assert "smollm2" in ids and "scratch" in ids  # the language models themselves
    assert "composed" not in ids and not any(i.startswith("openai:") for i in ids)  # nothing to serve on its own
    assert {f"mathrag/{g}" for g in engine.generators} <= set(ids)


def test_an_answer_from_the_notes_carries_its_sources(client, engine):
    reply = client.chat.completions.create(model="mathrag", messages=[{"role": "user", "content": QUESTION}])
    text = reply.choices[0].message.content
    *_, checked = engine.ask(QUESTION)
    assert text.startswith(checked.text.rstrip()) and reply.choices[0].finish_reason == "stop"
    answer, sources = text.split("\n\nSources:\n")
    assert "[1]" in answer and f"`{TANH}`" in sources.splitlines()[0]
    extra = reply.model_extra["mathrag"]
    assert extra["answered"] and extra["generator"] == "composed" and "supported" in extra["support"]
    assert extra["citations"][0]["source"] == TANH and extra["citations"][0]["number"] == 1


def test_the_streamed_answer_is_the_same_checked_answer(client):
    messages = [{"role": "user", "content": QUESTION}]
    whole = client.chat.completions.create(model="mathrag", messages=messages).choices[0].message.content
    chunks = list(client.chat.completions.create(model="mathrag", messages=messages, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len(chunks) > 3 and "".join(c.choices[0].delta.content or "" for c in chunks) == whole
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].model_extra["mathrag"]["citations"][0]["source"] == TANH


def test_a_question_outside_the_notes_is_declined(client):
    reply = client.chat.completions.create(model="mathrag/extractive", messages=[
        {"role": "user", "content": "How do I bake sourdough bread at home?"}])
    assert reply.model_extra["mathrag"]["answered"] is False and reply.model_extra["mathrag"]["citations"] == []
    assert "Sources:" not in reply.choices[0].message.content


def test_bad_requests_get_openai_errors(client):
    with pytest.raises(openai.NotFoundError, match="model 'gpt-9' does not exist"):
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": QUESTION}])
    with pytest.raises(openai.BadRequestError, match="temperature must be from 0 to 2"):
        client.chat.completions.create(model="mathrag", temperature=9,
                                       messages=[{"role": "user", "content": QUESTION}])
    with pytest.raises(openai.BadRequestError, match="last message must be the user's"):
        client.chat.completions.create(model="mathrag", messages=[{"role": "assistant", "content": "hi"}])


def test_the_projects_openai_generator_against_the_real_endpoint(app_url):
    """`openai:<mathrag>/v1#smollm2` streams what the local smollm2 writes: same model, greedy, over HTTP."""
    messages = [{"role": "user", "content": "Reply with one short sentence about vectors."}]
    remote = get_generator(f"openai:{app_url.rstrip('/')}/v1#smollm2")
    pieces = list(remote.stream(messages, max_new_tokens=16, temperature=0.0))
    local = "".join(get_generator("smollm2").stream(messages, max_new_tokens=16, temperature=0.0))
    assert len(pieces) > 1 and "".join(pieces) == local and local.strip()
    with pytest.raises(GeneratorError, match="answered HTTP 404"):
        list(get_generator(f"openai:{app_url.rstrip('/')}/v1#no-such-model").stream(messages))
    *_, reply = stream_answer(QUESTION, AskOptions(generator=f"openai:{app_url.rstrip('/')}/v1#smollm2",
                                                   max_new_tokens=48))
    assert reply.done and reply.generator.startswith("openai:") and reply.hits[0].source == TANH


def test_served_alone_with_a_key(engine, free_port):
    server, url = serve_api(engine, port=free_port(), api_key="s3cret", block=False)
    try:
        with pytest.raises(openai.AuthenticationError, match="valid API key"):
            openai.OpenAI(base_url=url, api_key="wrong", max_retries=0).models.list()
        keyed = openai.OpenAI(base_url=url, api_key="s3cret", max_retries=0, timeout=300)
        assert keyed.models.list().data[0].id == "mathrag"
        reply = keyed.chat.completions.create(model="mathrag", messages=[{"role": "user", "content": QUESTION}])
        assert reply.model_extra["mathrag"]["citations"][0]["source"] == TANH
    finally:
        server.should_exit = True


def test_without_a_key_only_this_machine_is_answered(engine):
    api = create_api(engine)
    from starlette.testclient import TestClient

    with TestClient(api, client=("192.0.2.7", 5000)) as far, TestClient(api, client=("127.0.0.1", 5000)) as near:
        refused = far.get("/models")
        assert refused.status_code == 403 and "--api-key" in refused.json()["error"]["message"]
        assert near.get("/models").status_code == 200
        bad = near.post("/chat/completions", content=b"{not json")
        assert bad.status_code == 400 and bad.json()["error"]["message"] == "the request body is not JSON"
    with TestClient(create_api(engine, shared=True), client=("127.0.0.1", 5000)) as tunnel:  # --share, no key
        assert tunnel.get("/models").status_code == 403


def test_serving_beyond_this_machine_needs_a_key():
    result = run_mathrag("serve", "--host", "0.0.0.0")
    assert result.returncode == 2
    assert result.stderr.strip() == ("mathrag: error: serving on 0.0.0.0 answers other machines: give --api-key "
                                     "(or set $MATHRAG_API_KEY)")
