"""The options of one question, checked once: how many passages, which search, which generator, how long.

``AskOptions`` is what every way of asking passes down (``mathrag ask``, the app's
engine, ``mathrag eval``) to :func:`rag.answering.stream_answer`. Building one checks
every value, so an option out of range is a one-line ``ValueError`` before any work:

    AskOptions(k=3, generator="extractive")
    AskOptions(k=0)    # ValueError: k must be from 1 to 100, not 0

The mode is checked against the retriever that will serve it (``check_mode``), and the
generator's name when it is loaded (``rag.generators.get_generator``).
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass

from rag.settings import MODES

MAX_K = 100
DEFAULT_GENERATOR = "composed"  # the notes' own sentences, composed to answer (rag.compose)


def check_k(k: object) -> int:
    """``k`` as an int, or a one-line ValueError."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise ValueError(f"k must be a whole number from 1 to {MAX_K}, not {k!r}")
    if not 1 <= int(k) <= MAX_K:
        raise ValueError(f"k must be from 1 to {MAX_K}, not {k}")
    return int(k)


def check_mode(mode: str, modes: tuple[str, ...] = MODES) -> str:
    if mode not in modes:
        raise ValueError(f"unknown mode '{mode}'; choose one of {', '.join(modes)}")
    return mode


@dataclass(frozen=True)
class AskOptions:
    """How to answer one question."""

    k: int = 5  # passages retrieved
    mode: str = "hybrid"  # retrieval mode
    generator: str = DEFAULT_GENERATOR
    max_new_tokens: int = 256  # a model's answer length limit
    temperature: float = 0.0  # 0: greedy decoding

    def __post_init__(self):
        object.__setattr__(self, "k", check_k(self.k))
        if not 1 <= int(self.max_new_tokens) <= 4096:
            raise ValueError(f"max_new_tokens must be from 1 to 4096, not {self.max_new_tokens}")
        if not 0.0 <= float(self.temperature) <= 2.0:
            raise ValueError(f"temperature must be from 0 to 2, not {self.temperature}")
        object.__setattr__(self, "max_new_tokens", int(self.max_new_tokens))
        object.__setattr__(self, "temperature", float(self.temperature))

    def but(self, **changes) -> AskOptions:
        """A copy with ``changes`` (checked like the original): ``options.but(k=3)``."""
        return dataclasses.replace(self, **changes) if changes else self
