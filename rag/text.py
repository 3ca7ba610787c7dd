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


# --------------------------------------------------------------------------- notes as data, not instructions

# Sentences in a retrieved passage that speak to the assistant rather than about mathematics. A note is data:
# such a sentence is withheld from the model (and from the extractive answer), so a note that says "ignore
# previous instructions" cannot steer the answer. The reader still sees the passage as written in Sources.
_INSTRUCTION = re.compile(
    r"\b(?:ignore|disregard|forget|override)\b[^.!?\n]{0,40}?\b(?:instructions?|prompts?|rules|directions|"
    r"guidelines)\b"
    r"|\b(?:reveal|print|show|repeat|output|leak)\b[^.!?\n]{0,30}?\bsystem\s+(?:prompt|message|instructions?)\b"
    r"|\bsystem\s+prompt\b"
    r"|\bfrom\s+now\s+on\b[^.!?\n]{0,30}?\byou\b"
    r"|\byou\s+are\s+(?:now|no\s+longer)\b"
    r"|\bnew\s+instructions?\s*:",
    re.IGNORECASE,
)
_SENTENCE = re.compile(r"[^.!?\n]*(?:[.!?]+|\n|$)")
WITHHELD = "(a sentence addressed to the assistant was withheld)"


def withhold_instructions(text: str) -> tuple[str, int]:
    """``text`` with each sentence that gives the assistant instructions replaced by a marker; and their count."""
    if not _INSTRUCTION.search(text):
        return text, 0
    count = 0

    def swap(match: re.Match) -> str:
        nonlocal count
        sentence = match.group(0)
        if sentence.strip() and _INSTRUCTION.search(sentence):
            count += 1
            lead = sentence[: len(sentence) - len(sentence.lstrip())]
            return lead + WITHHELD + ("\n" if sentence.endswith("\n") else "")
        return sentence

    return _SENTENCE.sub(swap, text), count


NOTE_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\([^)\s]+\.md(?:#[^)\s]*)?\)")


def link_text(text: str) -> str:
    """Links to other notes as their text (``[the SVD](../linear_algebra/svd.md)`` -> ``the SVD``): in an answer a
    note's relative path leads nowhere, and the sources list names the notes."""
    return NOTE_LINK.sub(r"\1", text)
