"""The composer's sentence embeddings, kept on disk so that a restart does not embed the notes again.

Warming the composer embeds every sentence it may choose: about 4,900 sentences, two minutes of both
cores on a laptop. The vectors depend only on the sentence's text and the embedder, so they are kept:

- ``MATHRAG_HOME/sentences/vectors.npz``: ``keys``, the SHA-1 of each sentence's text (``U40``), and
  ``vectors``, its normalized embedding (float32, ``(n, 384)``); written by ``numpy.savez``, read with
  ``allow_pickle=False``;
- ``MATHRAG_HOME/sentences/manifest.json``: the format, the embedder that made them
  (``rag.models.embedder_identity``), the count and the SHA-256 of ``vectors.npz``.

They are a cache, never the truth: a file that fails its checksum, an unreadable manifest or another
embedder's vectors are ignored, the sentences are embedded again and the files replaced.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from rag.artifacts import StorageError, file_sha256, write_atomic
from rag.settings import Settings

FORMAT = 1
log = logging.getLogger(__name__)


def store_dir(settings: Settings) -> Path:
    return settings.home / "sentences"


def sentence_key(text: str) -> str:
    """What a sentence is stored under: the SHA-1 of its text (40 hex digits)."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def load_vectors(settings: Settings, embedder: str) -> dict[str, np.ndarray]:
    """The stored vectors by sentence key; empty when there are none, or none usable for ``embedder``."""
    folder = store_dir(settings)
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        if manifest.get("format") != FORMAT or manifest.get("embedder") != embedder:
            return {}
        if file_sha256(folder / "vectors.npz") != manifest.get("sha256"):
            log.warning("mathrag: %s fails its checksum; the sentences are embedded again", folder / "vectors.npz")
            return {}
        with np.load(folder / "vectors.npz", allow_pickle=False) as stored:
            keys, vectors = stored["keys"], stored["vectors"].astype(np.float32, copy=False)
    except (OSError, ValueError, KeyError):
        return {}
    return dict(zip(keys.tolist(), vectors, strict=True))


def save_vectors(settings: Settings, embedder: str, vectors: dict[str, np.ndarray]) -> bool:
    """Store ``vectors`` (sentence key -> vector) in place of what was stored; False where the home is
    read-only or full (the vectors stay in memory; nothing else is lost)."""
    folder = store_dir(settings)
    keys = sorted(vectors)
    matrix = np.stack([vectors[k] for k in keys]).astype(np.float32) if keys else np.zeros((0, 384), np.float32)
    try:
        npz = write_atomic(folder / "vectors.npz", lambda tmp: np.savez(tmp, keys=np.array(keys, dtype="U40"),
                                                                         vectors=matrix))
        manifest = {"format": FORMAT, "embedder": embedder, "count": len(keys), "sha256": file_sha256(npz)}
        write_atomic(folder / "manifest.json", json.dumps(manifest, indent=2))
    except StorageError as exc:
        log.warning("mathrag: the sentence vectors are not kept: %s", exc)
        return False
    return True
