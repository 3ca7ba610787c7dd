"""Clean up what users type before it reaches the retriever or a model.

Questions arrive from a browser, a terminal or a script, and may hold anything:
control characters, lone surrogates from broken UTF-8, HTML tags, megabytes
of pasted text. :func:`clean_question` returns text that is safe to embed, tokenize and
print, plus notices saying what was changed, or raises :class:`QuestionError`
with a one-line reason.
"""

from __future__ import annotations

import re
import unicodedata

MAX_QUESTION_CHARS = 2_000

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_TAG = re.compile(r"</?[A-Za-z][^<>]*>")  # HTML tags are markup, not part of a question


class QuestionError(ValueError):
    """A question that cannot be answered at all (empty, not text)."""


def clean_question(text: object, max_chars: int = MAX_QUESTION_CHARS) -> tuple[str, list[str]]:
    """Sanitized question text and a list of notices about what was changed."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if not isinstance(text, str):
        raise QuestionError(f"the question must be text, not {type(text).__name__}")
    notices = []
    # Lone surrogates (from invalid UTF-8 decoded with surrogateescape) cannot be encoded; replace them.
    fixed = text.encode("utf-8", errors="replace").decode("utf-8")
    if fixed != text:
        notices.append("replaced invalid characters in the question")
    cleaned = _CONTROL.sub(" ", unicodedata.normalize("NFC", fixed))
    if cleaned != unicodedata.normalize("NFC", fixed):
        notices.append("removed control characters from the question")
    untagged = _TAG.sub(" ", cleaned)
    if untagged != cleaned:
        notices.append("ignored HTML tags in the question")
        cleaned = untagged
    cleaned = re.sub(r"[ \t]+", " ", cleaned).strip()
    if not cleaned:
        raise QuestionError("the question is empty")
    if len(cleaned) > max_chars:
        notices.append(f"the question was {len(cleaned):,} characters long; only the first {max_chars:,} were used")
        cleaned = cleaned[:max_chars].rstrip()
    return cleaned, notices
