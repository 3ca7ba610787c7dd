"""The Chat tab's conversations panel: past conversations kept per learner, reopened after a reload or a restart,
exported as Markdown or JSON, and the last answer copied with its sources.

The conversations themselves are in :class:`app.conversations.ConversationStore`; the browser keeps only which
learner and which conversation were open (``gr.BrowserState``, encrypted with a key kept in ``MATHRAG_HOME``, so
it still reads after a restart). :class:`ConversationDesk` holds what each event does, without Gradio's wiring,
so it can be read and tested on its own; :func:`conversations_panel` builds the components.
"""

from __future__ import annotations

import json
import secrets
import tempfile
from pathlib import Path
from typing import NamedTuple

import gradio as gr

from app.conversations import Conversation, ConversationStore, to_json, to_markdown, with_sources
from app.engine import answer_record
from rag.answering import Answer
from rag.artifacts import write_atomic
from rag.practice.progress import BadLearner, check_learner
from rag.settings import Settings

DEFAULT_LEARNER = "me"
# What the copy button runs in the browser: the text of the hidden box to the clipboard, and a word of feedback.
COPY_JS = """(text) => {
  navigator.clipboard.writeText(text || "");
  const b = document.querySelector("#copy-answer");
  if (b) { const was = b.innerText; b.innerText = text ? "Copied ✓" : "Nothing to copy yet";
           setTimeout(() => { b.innerText = was; }, 1500); }
  return [];
}"""


def browser_secret(home: Path) -> str:
    """The key the browser's saved state is encrypted with, made once per data directory and kept there."""
    path = home / "browser_state.key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        key = secrets.token_urlsafe(24)
        write_atomic(path, key)
        return key


class Shown(NamedTuple):
    """What the panel shows for one conversation: the chat, its id, the saved state, the exports, the copy text."""

    chat: list[dict]
    conversation: str
    saved: dict
    markdown: str | None
    json: str | None
    copy_text: str


class ConversationDesk:
    def __init__(self, settings: Settings):
        self.store = ConversationStore.open(settings)
        self.exports = Path(tempfile.gettempdir()) / "mathrag-exports"  # where Gradio may serve files from

    def choices(self, learner: str) -> list[tuple[str, str]]:
        return [(c.label(), c.id) for c in self.store.conversations(learner)]

    def _show(self, learner: str, conversation: str) -> Shown:
        loaded = self.store.load(conversation) if conversation else None
        if loaded is None or loaded[0].learner != learner:
            return Shown([], "", {"learner": learner, "conversation": ""}, None, None, "")
        kept, messages = loaded
        last = kept.turns[-1]
        markdown, data = self._export(kept)
        return Shown(messages, kept.id, {"learner": learner, "conversation": kept.id}, markdown, data,
                     with_sources(last["answer"], last["citations"]))

    def _export(self, kept: Conversation) -> tuple[str, str]:
        self.exports.mkdir(parents=True, exist_ok=True)
        markdown, data = self.exports / f"mathrag-{kept.id}.md", self.exports / f"mathrag-{kept.id}.json"
        write_atomic(markdown, to_markdown(kept))
        write_atomic(data, json.dumps(to_json(kept), indent=2, ensure_ascii=False))
        return str(markdown), str(data)

    def restore(self, saved: dict | None) -> tuple[str, Shown, list]:
        """On page load: (learner, the conversation that was open, the learner's list)."""
        saved = saved or {}
        try:
            learner = check_learner(saved.get("learner") or DEFAULT_LEARNER)
        except BadLearner:
            learner = DEFAULT_LEARNER
        return learner, self._show(learner, saved.get("conversation", "")), self.choices(learner)

    def keep(self, learner: str, conversation: str, question: str, reply: Answer, messages: list[dict]) -> Shown:
        """Keep a finished turn (its chat ``messages``) and show the conversation it belongs to."""
        record = {"question": question, "answer": reply.text, **answer_record(reply), "notices": reply.notices}
        conversation = self.store.add_turn(learner, conversation, record, messages)
        return self._show(check_learner(learner), conversation)

    def open(self, learner: str, conversation: str) -> Shown:
        return self._show(check_learner(learner), conversation or "")

    def delete(self, learner: str, conversation: str) -> Shown:
        if conversation:
            self.store.delete(conversation)
        return self._show(check_learner(learner), "")


class Panel(NamedTuple):
    """The panel's components that the chat's wiring needs."""

    saved: gr.BrowserState
    conversation: gr.State
    past: gr.Dropdown
    delete: gr.Button
    markdown: gr.DownloadButton
    json: gr.DownloadButton
    copy_text: gr.Textbox
    copy: gr.Button

    def shown_outputs(self, chatbot: gr.Chatbot) -> list:
        """Where a :class:`Shown` goes, in its order."""
        return [chatbot, self.conversation, self.saved, self.markdown, self.json, self.copy_text]


def conversations_panel(secret: str) -> Panel:
    """The components (inside the Chat tab's side column)."""
    saved = gr.BrowserState({"learner": DEFAULT_LEARNER, "conversation": ""}, storage_key="mathrag-chat",
                            secret=secret)
    conversation = gr.State("")
    with gr.Accordion("Conversations", open=True, elem_id="conversations"):
        past = gr.Dropdown([], value=None, label="Past conversations", elem_id="past-conversations")
        with gr.Row():
            markdown = gr.DownloadButton("Markdown", size="sm", elem_id="export-markdown")
            data = gr.DownloadButton("JSON", size="sm", elem_id="export-json")
            delete = gr.Button("Delete", size="sm", variant="stop", elem_id="delete-conversation")
        copy_text = gr.Textbox(elem_id="copy-source", show_label=False, interactive=False,
                               elem_classes=["mathrag-hidden"])
        copy = gr.Button("Copy answer with sources", size="sm", elem_id="copy-answer")
    return Panel(saved, conversation, past, delete, markdown, data, copy_text, copy)


def wire_panel(desk: ConversationDesk, panel: Panel, learner: gr.Textbox, chatbot: gr.Chatbot, new: gr.Button,
               note_links: gr.Dropdown, demo: gr.Blocks) -> None:
    """Page load restores; picking a past conversation, New chat (or the chat's bin icon), Delete and another
    learner (typed, then Enter) switch; the copy button runs in the browser."""
    shown = panel.shown_outputs(chatbot)
    cleared_links = gr.update(choices=[], value=None)

    def restore(saved):
        name, view, choices = desk.restore(saved)
        return (name, *view, gr.update(choices=choices, value=view.conversation or None))

    def switch(action, name: str, conversation: str):
        try:
            view = action(name, conversation)
            choices = desk.choices(name)
        except BadLearner as exc:
            gr.Warning(str(exc))
            return (*(gr.skip() for _ in shown), gr.skip(), gr.skip())
        return (*view, gr.update(choices=choices, value=view.conversation or None), cleared_links)

    demo.load(restore, panel.saved, [learner, *shown, panel.past], api_visibility="private")
    outputs = [*shown, panel.past, note_links]
    panel.past.input(lambda n, c: switch(desk.open, n, c), [learner, panel.past], outputs, api_visibility="private")
    new.click(lambda n: switch(desk.open, n, ""), learner, outputs, api_visibility="private")
    panel.delete.click(lambda n, c: switch(desk.delete, n, c), [learner, panel.conversation], outputs,
                       api_visibility="private")
    def other_learner(name: str):
        done = switch(desk.open, name, "")
        if done[1] == "":  # switched to the new learner (a bad name was warned about, and nothing changed)
            gr.Info(f"Learner: {name.strip()}. Past conversations: {len(desk.choices(name))}.")
        return done

    learner.submit(other_learner, learner, outputs, api_visibility="private")
    chatbot.clear(lambda n: switch(desk.open, n, ""), learner, outputs, api_visibility="private")  # its bin icon
    panel.copy.click(None, panel.copy_text, None, js=COPY_JS)
