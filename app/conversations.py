"""Conversations that are kept: every question and its cited answer, per learner, in SQLite on this machine.

``MATHRAG_HOME/conversations.sqlite3`` holds, for each learner (the same names as Practice), their
conversations and each turn of them: the question, the checked answer with its citations and support figures
(what an export writes), and the chat messages the app showed (what a reopened conversation shows again).

Why a local SQLite store and not the browser's storage: a conversation then survives a server restart, a
cleared browser and a change of browser alike; it is next to the learner's practice progress, under one name; it
has no 5 MB cap; and it can be exported from the command line too. The browser keeps only which learner and which
conversation were open, so a reload comes back to the same place. Every turn is one transaction (WAL mode): a
killed server loses at most the answer being written.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rag.practice.progress import check_learner
from rag.settings import Settings, get_settings

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, learner TEXT NOT NULL, title TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS conversations_by_learner ON conversations (learner, updated);
CREATE TABLE IF NOT EXISTS turns (
    conversation TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE, position INTEGER NOT NULL,
    asked TEXT NOT NULL, record TEXT NOT NULL, messages TEXT NOT NULL, PRIMARY KEY (conversation, position));
"""
TITLE_CHARS = 80


def conversations_db(settings: Settings | None = None) -> Path:
    return (settings or get_settings()).home / "conversations.sqlite3"


@dataclass
class Conversation:
    id: str
    learner: str
    title: str  # the first question, cut to TITLE_CHARS
    created: str  # ISO times, UTC
    updated: str
    turns: list[dict] = field(default_factory=list)  # records: question, answer, citations, support, ..., asked

    def label(self) -> str:
        """What the list of past conversations shows: day, time and title."""
        return f"{self.updated[:16].replace('T', ' ')} · {self.title}"


class ConversationStore:
    """Open one per process; every call takes its own short connection, so Gradio's worker threads can share it."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @classmethod
    def open(cls, settings: Settings | None = None) -> ConversationStore:
        return cls(conversations_db(settings))

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)  # transactions are begun explicitly
        db.execute("PRAGMA foreign_keys=ON")
        return db

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction that holds the write lock from its first statement (``BEGIN IMMEDIATE``), so two
        turns written at once cannot both read the same next position."""
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.close()

    def add_turn(self, learner: str, conversation: str, record: dict, messages: list[dict]) -> str:
        """Keep one question and its answer (``record``, and the chat ``messages`` that showed it) at the end of
        ``conversation``, or of a new one when it is empty or unknown; returns the conversation's id."""
        learner, now = check_learner(learner), datetime.now(UTC).isoformat(timespec="seconds")
        with self._writing() as db:
            found = db.execute("SELECT 1 FROM conversations WHERE id = ? AND learner = ?",
                               (conversation, learner)).fetchone()
            if not found:
                conversation = uuid.uuid4().hex[:12]
                title = " ".join(record["question"].split())
                title = title if len(title) <= TITLE_CHARS else title[:TITLE_CHARS].rsplit(" ", 1)[0] + " …"
                db.execute("INSERT INTO conversations VALUES (?, ?, ?, ?, ?)",
                           (conversation, learner, title, now, now))
            position = db.execute("SELECT COUNT(*) FROM turns WHERE conversation = ?",
                                  (conversation,)).fetchone()[0]
            db.execute("INSERT INTO turns VALUES (?, ?, ?, ?, ?)", (
                conversation, position, now, json.dumps(record, ensure_ascii=False),
                json.dumps(messages, ensure_ascii=False)))
            db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (now, conversation))
        return conversation

    def conversations(self, learner: str) -> list[Conversation]:
        """The learner's conversations, the latest first (without their turns)."""
        db = self._connect()
        try:
            rows = db.execute("SELECT id, learner, title, created, updated FROM conversations WHERE learner = ? "
                              "ORDER BY updated DESC, rowid DESC", (check_learner(learner),)).fetchall()
        finally:
            db.close()
        return [Conversation(*row) for row in rows]

    def load(self, conversation: str) -> tuple[Conversation, list[dict]] | None:
        """(the conversation with its turns, the chat messages to show it again), or None when it is gone."""
        db = self._connect()
        try:
            row = db.execute("SELECT id, learner, title, created, updated FROM conversations WHERE id = ?",
                             (conversation,)).fetchone()
            turns = db.execute("SELECT asked, record, messages FROM turns WHERE conversation = ? ORDER BY position",
                               (conversation,)).fetchall()
        finally:
            db.close()
        if row is None:
            return None
        kept = Conversation(*row, turns=[{**json.loads(record), "asked": asked} for asked, record, _ in turns])
        return kept, [m for _, _, messages in turns for m in json.loads(messages)]

    def delete(self, conversation: str) -> None:
        with self._writing() as db:
            db.execute("DELETE FROM conversations WHERE id = ?", (conversation,))


# --------------------------------------------------------------------------- exports


def with_sources(text: str, citations: list[dict]) -> str:
    """An answer followed by its numbered sources, as Markdown: what a chat client shows and an export keeps."""
    if not citations:
        return text
    lines = [f"- [{c['number']}] {c['title']} › {c['heading'].split(' > ', 1)[-1]} (`{c['source']}`)"
             for c in citations]
    return text.rstrip() + "\n\nSources:\n" + "\n".join(lines)


def to_markdown(conversation: Conversation) -> str:
    """The conversation as a Markdown document: each question, its answer, the support check and the sources."""
    lines = [f"# {conversation.title}", "",
             f"*A mathrag conversation of {conversation.learner}, {conversation.created[:10]}, "
             f"{len(conversation.turns)} question{'s' if len(conversation.turns) != 1 else ''}.*"]
    for i, turn in enumerate(conversation.turns, start=1):
        answer = turn["answer"].rstrip() + (f"\n\n*Support: {turn['support']}*" if turn.get("support") else "")
        lines += ["", f"## {i}. {turn['question']}", "", with_sources(answer, turn["citations"])]
    return "\n".join(lines) + "\n"


def to_json(conversation: Conversation) -> dict:
    return {"id": conversation.id, "learner": conversation.learner, "title": conversation.title,
            "created": conversation.created, "updated": conversation.updated, "turns": conversation.turns}
