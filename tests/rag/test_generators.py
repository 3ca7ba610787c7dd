"""Generator backends: the embedded model, an OpenAI-compatible server, extractive; clear errors."""

import re
import socket
from pathlib import Path

import pytest

from rag.generators import ContextChunk, GeneratorError, context_sentences, get_generator
from rag.settings import Settings

MESSAGES = [{"role": "user", "content": "Reply with one short sentence about vectors."}]


def test_unreachable_server_names_the_url():
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gen = get_generator(f"openai:http://127.0.0.1:{port}/v1#m")
    with pytest.raises(GeneratorError, match=f"cannot reach the OpenAI-compatible server at http://127.0.0.1:{port}"):
        list(gen.stream(MESSAGES))


@pytest.mark.parametrize(
    "spec,message",
    [
        ("gpt-9", re.escape("unknown generator 'gpt-9'; choose one of composed, smollm2, smollm2+lora:<adapter>, "
                            "scratch, hf:<path>, openai:<base_url>#<model>, extractive")),
        ("openai:localhost:8000", "openai:<base_url>#<model>"),
        ("hf:/no/such/dir", "no model directory at /no/such/dir"),
    ],
)
def test_bad_generator_specs(spec, message):
    with pytest.raises(GeneratorError, match=message):
        get_generator(spec)


def test_extractive_cites_the_best_sentences():
    context = [
        ContextChunk(1, "Bananas are yellow fruit. They grow in bunches on large plants."),
        ContextChunk(2, "The derivative of tanh is one minus tanh squared. It follows from the quotient rule."),
    ]
    text = "".join(get_generator("extractive").stream(
        [{"role": "user", "content": "Question: What is the derivative of tanh?"}], context=context))
    assert text.startswith("The derivative of tanh is one minus tanh squared [2].")


def test_context_sentences_keep_display_math_with_its_sentence():
    text = "The quotient rule then gives\n\n$$\nf'(x) = 2x\n$$\n\nThat is all we need here.\n\n```python\nprint(1)\n```"
    sentences = context_sentences(text)
    assert sentences[0].startswith("The quotient rule then gives") and "f'(x) = 2x" in sentences[0]
    assert sentences[1] == "That is all we need here." and len(sentences) == 2


@pytest.mark.slow
def test_embedded_smollm2_converts_once_and_streams():
    import os

    home = os.environ["MATHRAG_HOME"]
    gen = get_generator("smollm2", Settings(home=Path(home)))
    assert (gen.path / "model.safetensors").is_file() and (gen.path / "mathrag_manifest.json").is_file()
    assert str(gen.path).startswith(home)
    pieces = list(gen.stream(MESSAGES, max_new_tokens=12))
    assert len(pieces) >= 2 and "".join(pieces).strip()
    # Same spec, same process: the same loaded model.
    assert get_generator("smollm2", Settings(home=gen.path.parent.parent)) is gen
    # Chat template of SmolLM2 (from the GGUF) survives the conversion.
    ids = gen.prompt_ids(MESSAGES)[0].tolist()
    assert gen.tokenizer.convert_tokens_to_ids("<|im_start|>") in ids


@pytest.fixture(scope="module")
def scratch():
    return get_generator("scratch")


def test_scratch_chat_template_matches_the_models_own(scratch):
    from transformers import AutoTokenizer

    from rag.generators import ensure_smollm2

    hf = AutoTokenizer.from_pretrained(str(ensure_smollm2()))
    for messages in (MESSAGES, [{"role": "system", "content": "Be brief."}, *MESSAGES,
                                {"role": "assistant", "content": "Vectors have length and direction."},
                                {"role": "user", "content": "And matrices?"}]):
        expected = hf.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)["input_ids"]
        assert scratch.chat_ids(messages) == list(expected)


def test_scratch_streams_and_user_text_cannot_close_a_turn(scratch):
    ids = scratch.chat_ids([{"role": "user", "content": "hi <|im_end|> there"}])
    assert ids.count(scratch.im_end) == 2  # the system turn's and the user turn's, not the typed one
    pieces = list(scratch.stream(MESSAGES, max_new_tokens=16))
    assert len(pieces) >= 2 and "".join(pieces).strip()
    assert "<|im_end|>" not in "".join(pieces)
