"""Kept conversations: the SQLite store, its exports, and the panel's actions on a real answer."""

import dataclasses
import json
import threading
from pathlib import Path

import pytest

from app.conversations import ConversationStore, to_json, to_markdown, with_sources
from rag.practice.progress import BadLearner

CITED = [{"number": 1, "source": "corpus/calculus/chain_rule.md", "heading": "The Chain Rule > Statement",
          "title": "The Chain Rule"}]


def record(question: str, answer: str = "It multiplies the derivatives [1].", citations=CITED) -> dict:
    return {"question": question, "answer": answer, "answered": True, "asks": "how", "generator": "composed",
            "support": "1 of 1 sentence supported by the passages they cite.", "citations": citations,
            "notices": []}


def chat(question: str) -> list[dict]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": "It multiplies [1]."}]


def test_turns_are_kept_in_order_per_learner_and_reopen_as_they_were_shown(tmp_path):
    store = ConversationStore(tmp_path / "c.sqlite3")
    first = store.add_turn("ada", "", record("What is the chain rule?"), chat("What is the chain rule?"))
    assert store.add_turn("ada", first, record("And for three functions?"), chat("And for three functions?")) == first
    other = store.add_turn("ada", "no-such-id", record("What is a gradient?"), chat("What is a gradient?"))
    assert other != first  # an unknown id starts a new conversation instead of failing
    assert store.add_turn("bob", first, record("Hi?"), chat("Hi?")) != first  # nobody writes into another's
    listed = store.conversations("ada")
    assert [c.id for c in listed] == [other, first] and listed[1].title == "What is the chain rule?"
    kept, messages = ConversationStore(tmp_path / "c.sqlite3").load(first)  # a new store: what a restart reads
    assert [t["question"] for t in kept.turns] == ["What is the chain rule?", "And for three functions?"]
    assert messages == chat("What is the chain rule?") + chat("And for three functions?")
    store.delete(first)
    assert store.load(first) is None and [c.id for c in store.conversations("ada")] == [other]
    with pytest.raises(BadLearner, match="learner name"):
        store.conversations("<script>")


def test_turns_written_at_once_are_all_kept(tmp_path):
    store = ConversationStore(tmp_path / "c.sqlite3")
    conversation = store.add_turn("ada", "", record("q0"), chat("q0"))
    threads = [threading.Thread(target=store.add_turn, args=("ada", conversation, record(f"q{i}"), chat(f"q{i}")))
               for i in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    kept, messages = store.load(conversation)
    assert sorted(t["question"] for t in kept.turns) == sorted(f"q{i}" for i in range(9)) and len(messages) == 18


def test_exports_carry_every_answer_with_its_sources(tmp_path):
    store = ConversationStore(tmp_path / "c.sqlite3")
    conversation = store.add_turn("ada", "", record("What is the chain rule?"), chat("q"))
    store.add_turn("ada", conversation, record("What is a banana?", "The notes do not cover this.", []), chat("q"))
    kept, _ = store.load(conversation)
    md = to_markdown(kept)
    assert md.startswith("# What is the chain rule?\n") and "2 questions" in md
    assert "## 1. What is the chain rule?\n\nIt multiplies the derivatives [1].\n\n*Support: 1 of 1" in md
    assert "- [1] The Chain Rule › Statement (`corpus/calculus/chain_rule.md`)" in md
    assert "## 2. What is a banana?\n\nThe notes do not cover this." in md
    data = json.loads(json.dumps(to_json(kept)))
    assert data["learner"] == "ada" and [t["question"] for t in data["turns"]][1] == "What is a banana?"
    assert data["turns"][0]["citations"] == CITED and data["turns"][0]["asked"]
    assert with_sources("No sources.", []) == "No sources."


def test_the_desk_keeps_a_real_answer_and_restores_it(engine, tmp_path):
    from app.conversations_panel import ConversationDesk

    desk = ConversationDesk(dataclasses.replace(engine.settings, home=tmp_path))
    *_, reply = engine.ask("What is the derivative of tanh?")
    shown = desk.keep("ada", "", reply.question, reply, chat(reply.question))
    assert shown.conversation and shown.saved == {"learner": "ada", "conversation": shown.conversation}
    assert shown.copy_text.startswith(reply.text.rstrip()) and "activation_functions.md" in shown.copy_text
    assert Path(shown.markdown).read_text() == to_markdown(desk.store.load(shown.conversation)[0])
    learner, again, choices = desk.restore(shown.saved)  # a reload: the same conversation comes back
    assert learner == "ada" and again.chat == chat(reply.question) and choices[0][1] == shown.conversation
    assert desk.restore({"learner": "bob", "conversation": shown.conversation})[1].chat == []  # not bob's
    assert desk.restore({"learner": "<bad>"})[0] == "me"
