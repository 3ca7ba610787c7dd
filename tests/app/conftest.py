"""A real app server for the app tests: real index, real models, a free port on 127.0.0.1."""

import pytest


@pytest.fixture(scope="session")
def dead_endpoint(free_port) -> str:
    """An OpenAI-compatible URL where nothing listens."""
    return f"http://127.0.0.1:{free_port()}/v1"


@pytest.fixture(scope="session")
def engine(dead_endpoint):
    import os

    from app.engine import OPENAI_MODEL_ENV, OPENAI_URL_ENV, Engine

    os.environ[OPENAI_URL_ENV], os.environ[OPENAI_MODEL_ENV] = dead_endpoint, "ghost"
    try:
        return Engine.load()
    finally:
        os.environ.pop(OPENAI_URL_ENV), os.environ.pop(OPENAI_MODEL_ENV)


@pytest.fixture(scope="session")
def app_url(engine, free_port):
    from app.server import launch

    demo, url = launch(engine, port=free_port(), block=False, queue_size=8, concurrency=2)
    yield url
    demo.close()
