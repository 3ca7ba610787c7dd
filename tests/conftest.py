"""Shared test setup: a private MATHRAG_HOME per session, offline models."""

import os
import shutil
import socket
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True, scope="session")
def _private_home(tmp_path_factory):
    """Never let tests write into the developer's .mathrag/."""
    home = tmp_path_factory.mktemp("mathrag_home")
    old = os.environ.get("MATHRAG_HOME")
    os.environ["MATHRAG_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("MATHRAG_HOME", None)
    else:
        os.environ["MATHRAG_HOME"] = old


@pytest.fixture(scope="session")
def copy_notes():
    """copy_notes(folder, notes) -> ``folder/corpus`` holding copies of those real notes (paths under corpus/)."""
    from rag.settings import REPO_ROOT

    def copy(folder: Path, notes) -> Path:
        corpus = folder / "corpus"
        for rel in notes:
            target = corpus / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO_ROOT / "corpus" / rel, target)
        return corpus

    return copy


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def free_port():
    """free_port() -> a port on 127.0.0.1 that nothing listens on yet."""
    return _unused_port


@pytest.fixture
def port() -> int:
    """A port nothing listens on yet."""
    return _unused_port()


@pytest.fixture
def embedded_texts(monkeypatch):
    """embedded_texts(question) -> the list, growing as the real embedder runs, of every text it embeds
    that contains ``question`` (the embedder is the real model, only counted)."""
    from rag.models import load_embedder

    def watch(question: str) -> list[str]:
        model = load_embedder()
        real_encode, seen = model.encode, []

        def counting_encode(texts, *args, **kwargs):
            seen.extend(t for t in ([texts] if isinstance(texts, str) else texts) if question in t)
            return real_encode(texts, *args, **kwargs)

        monkeypatch.setattr(model, "encode", counting_encode)
        return seen

    return watch
