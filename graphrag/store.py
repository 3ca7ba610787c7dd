"""The graph on disk: build it when missing or stale, load it when it checks out, never use it silently broken.

Files under ``MATHRAG_HOME/graph/`` (JSON and NumPy's ``.npy``, no pickle):

- ``graph.json``: the graph as node-link JSON (``networkx.readwrite.json_graph``);
- ``graph.graphml``: the same graph for Gephi or yEd (lists stored as JSON strings);
- ``communities.json``: the communities at each level with their reports, and PageRank;
- ``concept_vectors.npy`` / ``report_vectors.npy``: MiniLM embeddings of each concept
  ("name: description") and each community report, rows in the order of ``vectors.json``;
- ``manifest.json``, written last: format version, the digest of the index state the graph
  was built from, counts, the prerequisite cycles found, and a SHA-256 per file.

They live in a version folder, ``graph/v<time>-<pid>/``, named by ``graph/CURRENT``
(:class:`rag.artifacts.VersionedStore`): a build writes a new folder and switches the
pointer when it is complete, so a killed build leaves the previous graph in use.

The graph follows the search index: its manifest records the digest of the index's per-note
hashes, and a graph built from another index state is rebuilt. Rebuilding the structure takes
about a second; the embeddings are the slow part, so they are reused for every concept and
report whose text did not change (the build reports how many were embedded anew).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx
import numpy as np
from networkx.readwrite import json_graph

from graphrag.build import build_graph
from graphrag.communities import Community, detect
from rag.artifacts import CorruptArtifact, StorageError, VersionedStore, file_sha256
from rag.corpus import load_corpus
from rag.index import SearchIndex, embed
from rag.settings import Settings, get_settings

FORMAT = 2  # 2: communities weigh edges by graphrag.build.EDGE_WEIGHT (a graph of format 1 is rebuilt)
FILES = ("graph.json", "graph.graphml", "communities.json", "vectors.json", "concept_vectors.npy",
         "report_vectors.npy")


class GraphCorrupt(CorruptArtifact):
    """A stored graph that is missing a file, fails a checksum, or has an older format."""


def graph_dir(settings: Settings | None = None) -> Path:
    return (settings or get_settings()).home / "graph"


def index_digest(index: SearchIndex) -> str:
    """A digest of the index state: which notes (by content hash) and how they were chunked."""
    m = index.manifest
    state = {"notes": m.get("notes", {}), "chunks": m.get("chunks"), "chunk_size": m.get("chunk_size")}
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()


def _text_key(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


@dataclass
class GraphData:
    """Everything graph search needs, in memory."""

    graph: nx.MultiDiGraph
    communities: list[Community]
    pagerank: dict[str, float]
    concept_ids: list[str]  # rows of concept_vectors
    concept_vectors: np.ndarray  # (n_concepts, 384), normalized
    report_vectors: np.ndarray  # (n_communities, 384), rows in the order of communities
    manifest: dict

    @property
    def cycles(self) -> list[list[str]]:
        return self.manifest.get("cycles", [])


@dataclass
class BuildReport:
    built: bool = False
    reason: str = ""
    embedded: int = 0  # texts embedded anew
    reused: int = 0  # embeddings kept from the previous build
    seconds: float = 0.0
    recovered: list[str] = field(default_factory=list)  # unfinished builds found and removed

    def summary(self) -> str:
        if not self.built:
            return f"graph used as it is ({self.reason})" if self.reason else "graph up to date"
        return (f"graph built ({self.reason}) in {self.seconds:.1f} s: {self.embedded} concept and report texts "
                f"embedded, {self.reused} reused")


def concept_text(data: dict) -> str:
    return f"{data['name']}: {data.get('description', '')}"


def _graphml_bytes(g: nx.MultiDiGraph) -> bytes:
    """GraphML allows only scalar attributes: lists become JSON strings."""
    h = nx.MultiDiGraph()
    h.add_nodes_from((n, {k: json.dumps(v) if isinstance(v, list) else v for k, v in d.items()})
                     for n, d in g.nodes(data=True))
    h.add_edges_from((u, v, key, {k: json.dumps(x) if isinstance(x, list) else x for k, x in d.items()})
                     for u, v, key, d in g.edges(keys=True, data=True))
    return "\n".join(nx.generate_graphml(h)).encode()


def _previous_vectors(folder: Path) -> dict[str, np.ndarray]:
    """text key -> vector from the last build, if it passes its checks (a failure just means re-embedding)."""
    try:
        _checked_manifest(folder)  # never reuse vectors from a damaged build
        keys = json.loads((folder / "vectors.json").read_text(encoding="utf-8"))
        out = {}
        for name in ("concept", "report"):
            vectors = np.load(folder / f"{name}_vectors.npy", allow_pickle=False)
            out |= dict(zip(keys[f"{name}_keys"], vectors, strict=True))
        return out
    except Exception:  # missing or broken: nothing to reuse
        return {}


def _embed_reusing(texts: list[str], previous: dict[str, np.ndarray], progress: bool, report: BuildReport,
                   ) -> np.ndarray:
    keys = [_text_key(t) for t in texts]
    todo = [i for i, k in enumerate(keys) if k not in previous]
    fresh = embed([texts[i] for i in todo], progress=progress) if todo else np.zeros((0, 384), np.float32)
    report.embedded += len(todo)
    report.reused += len(texts) - len(todo)
    rows = dict(zip(todo, fresh, strict=True))
    if not texts:
        return np.zeros((0, 384), np.float32)
    return np.stack([rows[i] if i in rows else previous[k] for i, k in enumerate(keys)]).astype(np.float32)


def build_and_save(index: SearchIndex, settings: Settings | None = None, *, progress: bool = True,
                   reason: str = "no graph yet") -> tuple[GraphData, BuildReport]:
    """Build the graph from the notes and the index's chunks, embed what changed, write it as a new version."""
    settings = settings or get_settings()
    store = VersionedStore(graph_dir(settings), "graph")
    with store.locked():
        return _build_locked(index, settings, store, progress, reason)


def _build_locked(index: SearchIndex, settings: Settings, store: VersionedStore, progress: bool,
                  reason: str) -> tuple[GraphData, BuildReport]:
    start = time.perf_counter()
    report = BuildReport(built=True, reason=reason, recovered=_remove_partials(store))
    notes = load_corpus(settings.corpus_dir, root=settings.corpus_dir.parent)
    indexed = {c.source for c in index.chunks}
    notes = [n for n in notes if n.source in indexed]  # exactly the notes the index holds
    g = build_graph(notes, index.chunks)
    communities, rank = detect(g, index.chunks)
    concept_ids = [n for n, k in g.nodes(data="kind") if k != "chunk"]
    current = store.current()
    previous = _previous_vectors(current) if current else {}
    concept_texts = [concept_text(g.nodes[n]) for n in concept_ids]
    report_texts = [c.report_text() for c in communities]
    concept_vectors = _embed_reusing(concept_texts, previous, progress, report)
    report_vectors = _embed_reusing(report_texts, previous, progress, report)

    files = {
        "graph.json": json.dumps(json_graph.node_link_data(g, edges="edges"), ensure_ascii=False).encode(),
        "graph.graphml": _graphml_bytes(g),
        "communities.json": json.dumps({"communities": [c.to_dict() for c in communities], "pagerank": rank},
                                       ensure_ascii=False).encode(),
        "vectors.json": json.dumps({"concept_ids": concept_ids, "concept_keys": [_text_key(t) for t in concept_texts],
                                    "report_keys": [_text_key(t) for t in report_texts]}).encode(),
    }
    kinds: dict[str, int] = {}
    for _, k in g.nodes(data="kind"):
        kinds[k] = kinds.get(k, 0) + 1
    edge_types: dict[str, int] = {}
    for *_, k in g.edges(keys=True):
        edge_types[k] = edge_types.get(k, 0) + 1
    with store.new_version() as folder:
        for name, data in files.items():
            (folder / name).write_bytes(data)
        for name, array in (("concept_vectors.npy", concept_vectors), ("report_vectors.npy", report_vectors)):
            np.save(folder / name, array, allow_pickle=False)
        manifest = {"format": FORMAT, "index_digest": index_digest(index),
                    "built_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "nodes": kinds, "edges": edge_types,
                    "communities": len(communities), "cycles": g.graph.get("cycles", []),
                    "generic_terms": g.graph.get("generic_terms", []),
                    "files": {name: file_sha256(folder / name) for name in FILES}}
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    for name in (*FILES, "manifest.json"):  # loose files of the layout before version folders
        (store.root / name).unlink(missing_ok=True)
    report.seconds = time.perf_counter() - start
    data = GraphData(g, communities, rank, concept_ids, concept_vectors, report_vectors, manifest)
    return data, report


def live_graph_dir(settings: Settings | None = None) -> Path | None:
    """The folder of the live graph version (None before the first build)."""
    return VersionedStore(graph_dir(settings), "graph").current()


def load_graph(store: Path) -> GraphData:
    """Read the live graph under ``store``, checking the format and every checksum.

    Raises FileNotFoundError when there is no graph yet and GraphCorrupt if anything is off.
    """
    versions = VersionedStore(store, "graph")
    for _ in range(3):  # another process may switch versions while this one reads
        folder = versions.current()
        if folder is None:
            raise FileNotFoundError(f"no graph at {store}")
        try:
            return _load_folder(folder)
        except GraphCorrupt:
            if versions.current() == folder:
                raise
    return _load_folder(folder)


def _checked_manifest(folder: Path) -> dict:
    """The folder's manifest after every check (format, each file's checksum); GraphCorrupt if one fails."""
    manifest = VersionedStore(folder.parent, "graph").read_manifest(folder, GraphCorrupt)
    fmt = manifest.get("format")
    if fmt != FORMAT:
        raise GraphCorrupt(f"graph format {fmt} is not {FORMAT} (built by another version)")
    for name in FILES:
        path = folder / name
        if not path.is_file():
            raise GraphCorrupt(f"{path} is missing")
        if file_sha256(path) != (manifest.get("files") or {}).get(name):
            raise GraphCorrupt(f"{path} does not match its checksum")
    return manifest


def _load_folder(folder: Path) -> GraphData:
    manifest = _checked_manifest(folder)
    try:
        g = json_graph.node_link_graph(json.loads((folder / "graph.json").read_text(encoding="utf-8")),
                                       directed=True, multigraph=True, edges="edges")
        comm = json.loads((folder / "communities.json").read_text(encoding="utf-8"))
        communities = [Community(**c) for c in comm["communities"]]
        ids = json.loads((folder / "vectors.json").read_text(encoding="utf-8"))["concept_ids"]
        concept_vectors = np.load(folder / "concept_vectors.npy", allow_pickle=False)
        report_vectors = np.load(folder / "report_vectors.npy", allow_pickle=False)
    except Exception as exc:  # passed its checksum but cannot be parsed
        raise GraphCorrupt(f"{folder} cannot be read: {exc}") from None
    if len(ids) != len(concept_vectors) or len(communities) != len(report_vectors):
        raise GraphCorrupt(f"{folder}: vectors do not match the concepts or the communities")
    return GraphData(g, communities, comm["pagerank"], ids, concept_vectors, report_vectors, manifest)


def ensure_graph(index: SearchIndex, settings: Settings | None = None, *, rebuild: bool = False,
                 progress: bool = True) -> tuple[GraphData, BuildReport]:
    """The graph for this index state: loaded when it is current and intact, else (re)built with a message.

    While another process builds, its result is not complete, so the live graph is used as it is;
    a read-only ``MATHRAG_HOME`` is served the same way (with a warning when stale).
    """
    settings = settings or get_settings()
    store = VersionedStore(graph_dir(settings), "graph")
    if not store.writable():
        try:
            data = load_graph(store.root)
        except (FileNotFoundError, GraphCorrupt) as exc:
            raise StorageError(f"cannot build the graph: {store.root} is not writable, and it holds no usable "
                               f"graph ({exc}); set MATHRAG_HOME to a writable folder") from None
        if data.manifest.get("index_digest") != index_digest(index):
            print(f"mathrag: {store.root} is not writable: using the stored graph, which is older than the "
                  "index", file=sys.stderr, flush=True)
        return data, BuildReport(reason="read-only: the stored graph is used as it is")
    if rebuild:
        return build_and_save(index, settings, progress=progress, reason="--rebuild")
    with store.locked(wait=False) as free:
        if free:
            return _ensure_locked(index, settings, store, progress)
    try:
        data = load_graph(store.root)
        return data, BuildReport(reason="another process is building the graph; using the current one")
    except (FileNotFoundError, GraphCorrupt):
        with store.locked():
            return _ensure_locked(index, settings, store, progress)


def _remove_partials(store: VersionedStore) -> list[str]:
    removed = store.remove_partials()
    if removed:
        print(f"mathrag: removed {len(removed)} unfinished graph build(s) left by an interrupted run",
              file=sys.stderr, flush=True)
    return removed


def _ensure_locked(index: SearchIndex, settings: Settings, store: VersionedStore,
                   progress: bool) -> tuple[GraphData, BuildReport]:
    recovered = _remove_partials(store)
    try:
        data = load_graph(store.root)
    except FileNotFoundError:
        return _build_locked(index, settings, store, progress, "no graph yet")
    except GraphCorrupt as exc:
        print(f"mathrag: the stored graph is unusable ({exc}); rebuilding it", file=sys.stderr, flush=True)
        return _build_locked(index, settings, store, progress, f"rebuilt: {exc}")
    if data.manifest.get("index_digest") != index_digest(index):
        return _build_locked(index, settings, store, progress, "the notes changed")
    return data, BuildReport(recovered=recovered)


def remove_graph(settings: Settings | None = None) -> None:
    shutil.rmtree(graph_dir(settings), ignore_errors=True)
