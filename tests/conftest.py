"""Shared test setup: a private MATHRAG_HOME per session, offline models."""

import os

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
