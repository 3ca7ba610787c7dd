"""Cited answers: retrieval, prompts, citations, the grounding guard, refusals and bad input."""

import pytest
from openai_fake import FakeOpenAI, fake_openai

from rag import answer, stream_answer
from rag.answering import NOT_COVERED, grounding, resolve_citations
from rag.generators import GeneratorError
from rag.index import index_dir
from rag.retriever import Hit
from rag.text import QuestionError

TANH = "corpus/neural_networks/activation_functions.md"


def test_extractive_answer_cites_the_activation_note(small_retriever):
    reply = answer("What is the derivative of tanh?", retriever=small_retriever, generator="extractive")
    assert reply.done and reply.covered and reply.generator == "extractive"
    assert reply.citations and reply.citations[0].source == TANH
    assert "\\tanh" in reply.text
    for c in reply.citations:  # every citation names a retrieved chunk, with its number
        assert f"[{c.number}]" in reply.text
        assert reply.hits[c.number - 1].chunk_id == c.chunk_id


def test_questions_the_notes_do_not_cover_are_refused(small_retriever):
    reply = answer("Who won the football world cup in 1998?", retriever=small_retriever, generator="extractive")
    assert not reply.covered and reply.text.startswith(NOT_COVERED)
    assert "The nearest notes are:" in reply.text and not reply.citations


def test_streaming_grows_then_resolves_citations(small_retriever):
    with fake_openai("echo") as url:
        states = [(a.text, a.done) for a in stream_answer(
            "Why divide attention scores by the square root of d_k?", retriever=small_retriever,
            generator=f"openai:{url}#tiny-model")]
        request = FakeOpenAI.requests[0]["body"]
    assert len(states) >= 3 and [done for _, done in states] == [False] * (len(states) - 1) + [True]
    assert len(states[1][0]) > len(states[0][0])
    prompt = request["messages"][-1]["content"]
    assert prompt.startswith("Notes:\n\n[1] Scaled Dot-Product Attention") and "Question: Why divide" in prompt
    assert request["messages"][0]["role"] == "system" and "cite" in request["messages"][0]["content"]


def test_grounded_model_answer_is_kept(small_retriever):
    with fake_openai("echo") as url:
        reply = answer("Why divide attention scores by the square root of d_k?", retriever=small_retriever,
                       generator=f"openai:{url}#tiny-model")
    assert reply.fallback is None and reply.grounding >= 0.9
    assert reply.citations[0].number == 1 and reply.citations[0].source.endswith("scaled_dot_product_attention.md")


def test_ungrounded_model_answer_is_replaced(small_retriever):
    nonsense = ("When you add layers to your brain you add neurons, receptive fields and creativity, "
                "which is why football teams practise every Tuesday.")
    with fake_openai(nonsense) as url:
        reply = answer("What is the derivative of tanh?", retriever=small_retriever,
                       generator=f"openai:{url}#tiny-model")
    assert reply.fallback == "composed" and reply.support["supported"] == reply.support["checked"]
    assert "none of" in reply.notices[0] and "was supported by the passage it cites" in reply.notices[0]
    assert "brain" not in reply.text and reply.citations[0].source == TANH


def test_only_the_unsupported_sentence_of_a_model_answer_goes(small_retriever):
    mixed = ("Tanh is a rescaled sigmoid with outputs in (-1, 1) [1]. "
             "Its derivative is $1+\\frac{1}{\\sqrt{5}}$ [1].")
    with fake_openai(mixed) as url:
        reply = answer("What is the derivative of tanh?", retriever=small_retriever,
                       generator=f"openai:{url}#tiny-model")
    assert reply.fallback is None and "\\sqrt{5}" not in reply.text
    assert reply.text.startswith("Tanh is a rescaled sigmoid")
    assert reply.support["checked"] == 2 and reply.support["supported"] == 1
    assert "1 of tiny-model" not in reply.notices[0] and "not supported by the passage they cite" in reply.notices[0]


def test_guard_can_be_turned_off(small_retriever):
    nonsense = "Bananas grow in bunches on tall plants near the equator every single year."
    with fake_openai(nonsense) as url:
        reply = answer("What is the derivative of tanh?", retriever=small_retriever,
                       generator=f"openai:{url}#tiny-model", guard=False)
    assert reply.fallback is None and reply.text.startswith("Bananas")


def test_follow_up_questions_use_the_previous_turn(small_retriever):
    history = [{"role": "user", "content": "What is the tanh activation function?"},
               {"role": "assistant", "content": "Tanh squashes numbers into (-1, 1) [1]."}]
    reply = answer("and its derivative?", retriever=small_retriever, generator="extractive", history=history)
    assert reply.hits[0].source == TANH


def test_resolve_citations_drops_numbers_that_name_no_chunk():
    hits = [Hit(text="t", source=f"corpus/a/{i}.md", heading="H", title="T", score=1.0, chunk_id=f"c{i}")
            for i in range(3)]
    text, citations = resolve_citations("One [1]. Two [9]. Three [2, 7]. Four [3][1].", hits)
    assert text == "One [1]. Two. Three [2]. Four [3][1]."
    assert [c.number for c in citations] == [1, 2, 3] and citations[2].chunk_id == "c2"


def test_grounding_scores_support():
    hits = [Hit(text="The derivative of tanh is one minus tanh squared, from the quotient rule.", source="s",
                heading="Activation > Tanh", title="Activation", score=1.0, chunk_id="c")]
    assert grounding("By the quotient rule the derivative is one minus tanh squared [1].", "tanh'?", hits) == 1.0
    assert grounding("Neurons in the brain fire when football players score goals.", "tanh'?", hits) < 0.3
    assert grounding("The derivative of tanh.", "What is the derivative of tanh?", hits) == 0.0  # only echoes


def test_bad_input_is_refused_and_leaves_the_index_alone(small_retriever):
    store = index_dir(small_retriever.settings)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in store.rglob("*") if p.is_file())
    with pytest.raises(QuestionError, match="the question is empty"):
        answer("  \n ", retriever=small_retriever, generator="extractive")
    with pytest.raises(GeneratorError, match="unknown generator 'nope'"):
        answer("What is tanh?", retriever=small_retriever, generator="nope")
    with pytest.raises(ValueError, match="unknown mode 'fuzzy'"):
        answer("What is tanh?", retriever=small_retriever, generator="extractive", mode="fuzzy")
    with pytest.raises(ValueError, match="k must be from 1 to 100"):
        answer("What is tanh?", retriever=small_retriever, generator="extractive", k=0)
    long = answer("derivative of tanh " * 10_000, retriever=small_retriever, generator="extractive")
    assert any("only the first 2,000 were used" in n for n in long.notices)
    odd = answer("tanh\x00\x1b[31m derivative \udcff", retriever=small_retriever, generator="extractive")
    assert "removed control characters from the question" in odd.notices and "\x00" not in odd.question
    after = sorted((p.name, p.stat().st_mtime_ns) for p in store.rglob("*") if p.is_file())
    assert after == before


def test_an_uncited_grounded_answer_gets_a_citation(small_retriever):
    plain = "The quotient rule gives the derivative of tanh, and tanh is a rescaled sigmoid with outputs in (-1, 1)"
    with fake_openai(plain) as url:
        reply = answer("What is the derivative of tanh?", retriever=small_retriever,
                       generator=f"openai:{url}#tiny-model")
    assert reply.fallback is None and reply.citations and reply.citations[0].source == TANH
    assert reply.text.startswith("The quotient rule gives") and reply.text.split("\n")[0].endswith("[1]")


@pytest.mark.parametrize(("generator", "mode"), [("composed", "hybrid"), ("extractive", "hybrid"),
                                                 ("composed", "bm25"), ("extractive", "dense")])
def test_one_answer_embeds_the_question_once(small_retriever, embedded_texts, generator, mode):
    question = "What is the derivative of tanh?"
    asked = embedded_texts(question)
    reply = answer(question, retriever=small_retriever, generator=generator, mode=mode)
    assert reply.done and reply.covered and "\\tanh" in reply.text
    assert asked == [question]


def test_the_composers_sentence_vectors_are_kept_for_the_next_start(small_settings, monkeypatch):
    from rag import answering, generators
    from rag.models import embedder_identity, load_embedder
    from rag.retriever import Retriever
    from rag.sentence_store import load_vectors, store_dir

    retriever = Retriever.load(small_settings, progress=False)
    ready = answering.warm_sentences(retriever)
    kept = load_vectors(small_settings, embedder_identity(small_settings))
    assert ready == len(kept) > 100
    assert load_vectors(small_settings, "another-embedder") == {}  # another embedder's vectors are not used

    # The next start: nothing in memory. The sentences are read from disk, and only the question is embedded.
    monkeypatch.setattr(generators, "_SENTENCE_VECTORS", {})
    monkeypatch.setattr(answering, "_LIBRARIES", {})
    model, embedded = load_embedder(), []
    real_encode = model.encode
    monkeypatch.setattr(model, "encode", lambda texts, *a, **kw: embedded.append(texts) or real_encode(texts, *a, **kw))
    restarted = Retriever.load(small_settings, progress=False)
    assert answering.warm_sentences(restarted) == ready and embedded == []
    reply = answer("Why does Adam need bias correction?", retriever=restarted)
    assert reply.covered and embedded == [["Why does Adam need bias correction?"]]

    npz = store_dir(small_settings) / "vectors.npz"  # a damaged file is not used
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 0xFF
    npz.write_bytes(bytes(data))
    assert load_vectors(small_settings, embedder_identity(small_settings)) == {}
