"""Fixtures for the reliability tests: private sandboxes (a few real notes, an empty MATHRAG_HOME) and an engine."""

import os
from pathlib import Path

import pytest


@pytest.fixture
def box(tmp_path):
    """A fresh sandbox; the converted SmolLM2 is shared with the session's MATHRAG_HOME."""
    from reliability.faults import Sandbox

    models = Path(os.environ["MATHRAG_HOME"]) / "models"
    models.mkdir(parents=True, exist_ok=True)
    return Sandbox(tmp_path / "box", models=models)


@pytest.fixture(scope="session")
def full_engine():
    """The app's engine over the whole corpus in the session's MATHRAG_HOME."""
    from app.engine import Engine

    return Engine.load()


@pytest.fixture(scope="module")
def served(full_engine, free_port):
    """(url, engine) of a real server on 127.0.0.1 with the default queue (32) and two workers."""
    from app.server import launch

    demo, url = launch(full_engine, port=free_port(), block=False, queue_size=32, concurrency=2)
    yield url, full_engine
    demo.close()
