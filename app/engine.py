"""What the app serves from: one retriever and the generators, loaded once per process.

Every browser session and API call shares the same :class:`Engine`, so the
models are loaded once (at start-up, before the server accepts requests) and
the first question does not pay for loading them. The engine also knows which
options really work here, so the UI never offers a dead entry: a generator is
listed only when its model is installed or its endpoint is configured.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from app import attention_maps
from app.figures_view import figures_for_answer, note_with_figures
from graphrag import GraphRetriever
from graphrag import view as graph_view
from graphrag.paths import UnknownConcept, learning_path
from graphrag.store import ensure_graph
from rag.answering import Answer, stream_answer, warm_sentences
from rag.corpus import Note, load_corpus
from rag.figures import ensure_drawn, figures_dir
from rag.generators import get_generator
from rag.index import note_hash, update_index
from rag.models import ModelNotFound, generator_gguf_path
from rag.options import AskOptions
from rag.settings import Settings, get_settings

log = logging.getLogger("mathrag")

# An OpenAI-compatible endpoint is offered when both are set, e.g.
# MATHRAG_OPENAI_URL=http://127.0.0.1:8000/v1 MATHRAG_OPENAI_MODEL=qwen2.5-7b-instruct
OPENAI_URL_ENV, OPENAI_MODEL_ENV = "MATHRAG_OPENAI_URL", "MATHRAG_OPENAI_MODEL"
MAX_MESSAGE_CHARS = 100_000  # what the browser may send; the question itself is cut at 2,000 with a notice


def available_generators(settings: Settings | None = None) -> list[str]:
    """Generator strings that work on this machine, the default first; each trained LoRA adapter
    (``MATHRAG_HOME/adapters/<name>/``) is offered as ``smollm2+lora:<name>``."""
    names = ["composed"]  # the default: the notes' own sentences, composed to answer (rag.compose)
    try:
        generator_gguf_path()
        adapters = sorted(p.parent.name for p in ((settings or get_settings()).home / "adapters").glob(
            "*/adapter_config.json"))
        names += ["smollm2", *(f"smollm2+lora:{a}" for a in adapters), "scratch"]  # scratch: the same weights,
    except ModelNotFound:  # run by the project's own code
        pass
    names.append("extractive")
    url, model = os.environ.get(OPENAI_URL_ENV), os.environ.get(OPENAI_MODEL_ENV)
    if url and model:
        names.append(f"openai:{url}#{model}")
    return names


def _warm_in_background(retriever) -> None:
    """Embed the composer's sentences in a background thread, so the first answers need not wait. At exit the
    thread is told to stop and joined: torch must not be running in it while the interpreter shuts down."""
    stop = threading.Event()
    thread = threading.Thread(target=warm_sentences, args=(retriever, stop), daemon=True, name="warm-sentences")
    thread.start()

    def finish() -> None:
        stop.set()
        thread.join(timeout=60)

    atexit.register(finish)


def escape_html(text: str) -> str:
    """Show ``<tags>`` as text, outside code (where Markdown already shows them literally)."""
    parts = re.split(r"(```.*?```|`[^`\n]*`)", text, flags=re.S)
    return "".join(p if p.startswith("`") else p.replace("&", "&amp;").replace("<", "&lt;") for p in parts)


@dataclass
class Engine:
    retriever: GraphRetriever
    generators: list[str]
    notes: list[Note] = field(default_factory=list)
    settings: Settings = field(default_factory=get_settings)
    _refreshing: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _seen: dict[str, str] | None = field(default=None, repr=False)
    figures: list[dict] = field(default_factory=list)  # the drawn figures (rag.figures manifest rows)

    @property
    def home(self) -> Path:
        return self.settings.home

    @classmethod
    def load(cls, settings: Settings | None = None, warm: bool = True) -> Engine:
        """Load (and build if needed) the index, and warm the default generator."""
        settings = settings or get_settings()
        retriever = GraphRetriever.load(settings)  # the vector modes and the graph's
        generators = available_generators(settings)
        if warm:
            get_generator(generators[0], settings)
            retriever.search("warm up", k=1)
            _warm_in_background(retriever)
        engine = cls(retriever, generators, load_corpus(settings.corpus_dir, root=settings.corpus_dir.parent),
                     settings)
        engine.draw_figures()
        return engine

    def draw_figures(self, progress: bool = False) -> None:
        """Draw the notes' figures not drawn yet (cached by their code); a failing block is logged, not fatal."""
        try:
            self.figures, errors = ensure_drawn(self.notes, self.home, progress=progress)
        except OSError as exc:  # a read-only home: serve without the figures
            log.warning("mathrag: the notes' figures could not be drawn: %s", exc)
            return
        for file, error in errors.items():
            log.warning("mathrag: figure %s failed: %s", file, error)

    @property
    def figures_dir(self) -> Path:
        return figures_dir(self.home)

    def answer_figures(self, reply: Answer) -> list[dict]:
        return figures_for_answer(reply.citations, self.figures) if reply.covered else []

    def refresh(self, progress: bool = False) -> str | None:
        """Pick up edited, added or removed notes while serving; returns what changed, or None.

        The index and the graph are updated on disk, then a new retriever replaces the old one
        in a single assignment: answers already running hold the old retriever and finish on
        it; the next question uses the new one. Cheap when nothing changed (the notes' hashes
        are compared with the index's manifest), so it can be polled.
        """
        with self._refreshing:
            notes = load_corpus(self.settings.corpus_dir, root=self.settings.corpus_dir.parent)
            hashes = {n.source: note_hash(n) for n in notes}
            if hashes in (self.retriever.index.manifest.get("notes"), self._seen):
                return None
            index, report = update_index(self.settings, progress=progress)
            data, _ = ensure_graph(index, self.settings, progress=progress)
            # Another process still writing: look again at the next poll. Otherwise wait for the next edit
            # (also when the home is read-only and the stored index is served as it is).
            self._seen = None if report.reason.startswith("another process") else hashes
            old, self.retriever, self.notes = self.retriever, GraphRetriever(index, self.settings, data=data), notes
            self.draw_figures()
            before = old.index.manifest.get("notes", {})
            changed = sorted(s for s in set(before) | set(hashes) if before.get(s) != hashes.get(s))
            message = f"notes changed ({', '.join(changed)}); the index now has {len(index)} chunks"
            log.warning("mathrag: %s", message)
            return message

    @property
    def modes(self) -> list[str]:
        return list(self.retriever.modes)

    # ---- notes

    def areas(self) -> list[str]:
        return sorted({n.area for n in self.notes})

    def notes_in(self, area: str | None) -> list[tuple[str, str]]:
        """(title, source) pairs for a dropdown, sorted by title."""
        return sorted((n.title, n.source) for n in self.notes if area in (None, "", n.area))

    def note(self, source: str) -> Note | None:
        return next((n for n in self.notes if n.source == source), None)

    def render_note(self, source: str | None) -> str:
        note = self.note(source or "")
        if note is None:
            return "*Choose a note.*"
        prereqs = ", ".join(self.title_of(s) for s in note.prerequisites) or "none"
        header = (f"*{note.area.replace('_', ' ')}* · `{note.source}` · prerequisites: {prereqs}\n\n"
                  f"> {escape_html(note.summary)}\n\n")
        return header + note_with_figures(note, self.figures, self.home, escape_html)

    def title_of(self, slug: str) -> str:
        return next((n.title for n in self.notes if n.slug == slug), slug)

    # ---- answers

    def ask(self, question: str, history: list[dict] | None = None, options: AskOptions | None = None,
            **choices) -> Iterator[Answer]:
        """Stream an answer (``options``, or any of them as keywords); only what the engine offers is accepted."""
        for name, kind in (("k", int), ("max_new_tokens", int), ("temperature", float)):  # a slider gives 5.0
            if name in choices:
                choices[name] = kind(choices[name])
        if choices.get("generator") is None:
            choices["generator"] = options.generator if options else self.generators[0]
        options = (options or AskOptions()).but(**choices)
        if options.generator not in self.generators:
            raise ValueError(f"unknown generator '{options.generator}'; choose one of {', '.join(self.generators)}")
        if options.mode not in self.modes:
            raise ValueError(f"unknown mode '{options.mode}'; choose one of {', '.join(self.modes)}")
        return stream_answer(question[:MAX_MESSAGE_CHARS], options, retriever=self.retriever, history=history)

    # ---- the knowledge graph

    def answer_graph(self, reply: Answer | None):
        """(plotly Figure, Markdown) of the part of the graph behind an answer."""
        hits = reply.hits if reply is not None else []
        sub = graph_view.answer_subgraph(self.retriever.data.graph, hits)
        title = f"{sub.number_of_nodes()} concepts behind the last answer" if hits else ""
        return graph_view.interactive(sub, title), graph_view.describe(sub)

    def learning_path(self, concept: str) -> str:
        """Markdown: the notes to study before a concept, in order, each with its summary."""
        try:
            path = learning_path(self.retriever.data.graph, concept)
        except UnknownConcept as exc:
            return f"⚠️ {escape_html(str(exc))}"
        g = self.retriever.data.graph
        lines = [f"**Learning path to {g.nodes[path.target]['name']}** ({len(path.steps)} notes, prerequisites "
                 "first):", ""]
        lines += [f"{i}. **{s.title}** · *{s.area.replace('_', ' ')}* · `{s.source}`  \n   {escape_html(s.summary)}"
                  for i, s in enumerate(path.steps, start=1)]
        lines += [f"\n*Cycle among the prerequisites: {', '.join(c)}.*" for c in path.cycles]
        return "\n".join(lines)

    # ---- inside the model

    def attention_sources(self) -> list[tuple[str, str]]:
        """(label, source) of the models whose attention can be shown: SmolLM2 via from_scratch, a mini GPT."""
        return attention_maps.available_sources(self.home, smollm2="scratch" in self.generators)

    def attention(self, text: str, source: str, layer: int, head: int | None):
        """(RGB image, Markdown caption) of one head of ``layer`` (or all heads when head is None)."""
        if source not in {value for _, value in self.attention_sources()}:
            raise attention_maps.AttentionError(f"no model '{source}' to look into here")
        maps = attention_maps.compute(text, int(layer), source)
        if head is None:
            figure = attention_maps.grid_figure(maps)
            caption = f"All {maps.n_heads} heads of layer {maps.layer}, {len(maps.tokens)} tokens."
        else:
            figure = attention_maps.head_figure(maps, int(head))
            links = "; ".join(f"`{q}` → `{k}` {w:.2f}" for q, k, w in maps.top_links(int(head), 5))
            caption = (f"Layer {maps.layer}, head {head}, {len(maps.tokens)} tokens. Row *i* shows where token *i* "
                       f"looks (each row sums to 1). Strongest links besides the first token: {links or 'none'}.")
        return attention_maps.figure_to_array(figure), caption


def sources_markdown(reply: Answer) -> list[tuple[str, str]]:
    """(title, body) of each cited source, for collapsible entries: what the answer's [n] point to."""
    cited = {c.number for c in reply.citations}
    rows = []
    for i, hit in enumerate(reply.hits, start=1):
        if cited and i not in cited:
            continue
        section = hit.heading.split(" > ", 1)[1] if " > " in hit.heading else "summary"
        title = f"[{i}] {hit.title} › {section} · score {hit.score:.3f}"
        rows.append((title, f"`{hit.source}`\n\n{escape_html(hit.text)}"))
    return rows


def note_link_choices(reply: Answer) -> list[tuple[str, str]]:
    seen, out = set(), []
    for c in reply.citations or []:
        if c.source not in seen:
            seen.add(c.source)
            out.append((f"[{c.number}] {c.title}", c.source))
    return out


def answer_record(reply: Answer) -> dict:
    """What other tools get besides the text (the MCP ``ask`` tool, the OpenAI API's ``mathrag`` field)."""
    return {"answered": reply.covered, "asks": reply.asks, "generator": reply.generator,
            "support": reply.support.get("summary", "") if reply.support else "",
            "citations": [{"number": c.number, "source": c.source, "heading": c.heading, "title": c.title}
                          for c in reply.citations]}
