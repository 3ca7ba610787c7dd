"""The search index over the note chunks: dense (FAISS) and lexical (BM25).

On disk, under ``MATHRAG_HOME/index/``::

    CURRENT              name of the live version folder (replaced atomically)
    .lock                held by the one process writing a new version
    v<time>-<pid>/
        manifest.json    format version, embedder identity, per-note hashes, file checksums
        chunks.jsonl     one chunk per line (text and metadata)
        vectors.npy      float32 (N, d) embeddings, row i belongs to line i of chunks.jsonl
        faiss.index      FAISS's own format: an ID map over an inner-product index
        bm25/            bm25s's own files (JSON + .npy, no pickle)

A new version is written completely into a fresh folder, then ``CURRENT`` is
switched to it with one atomic rename (:class:`rag.artifacts.VersionedStore`),
so a crash mid-write leaves the previous good index in use, and the unfinished
folder is removed by the next update. While one process writes, others keep
using the current index; a read-only ``MATHRAG_HOME`` is served as it is.
Loading verifies every file against the manifest's checksums; anything
missing, stale or corrupt is reported and rebuilt, never used silently. The
manifest names the embedder that made the vectors (the base model's id, or a
fine-tuned folder with a hash of its weights, see ``MATHRAG_EMBEDDER``);
another embedder means a full rebuild.

Updates are incremental: a chunk is embedded again only when its text changed
(so editing one note re-embeds that note alone), chunks of deleted notes are
removed from the FAISS ID map, and new ones are added.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import bm25s
import faiss
import numpy as np

from rag.artifacts import CorruptArtifact, StorageError, VersionedStore, file_sha256
from rag.chunking import DEFAULT_CHUNK_SIZE, Chunk, chunk_note
from rag.corpus import Note, load_corpus
from rag.models import EMBEDDING_DIM, embedder_identity, load_embedder
from rag.settings import INDEX_KINDS, Settings, get_settings

log = logging.getLogger("mathrag")

FORMAT_VERSION = 2  # 2: the notes' "In short" chunks (front-matter definitions)
FLAT_LIMIT = 20_000  # "auto" keeps exact search below this many chunks, and picks HNSW above
# Approximate-index settings, measured by ``mathrag bench --suite scale``. On real embeddings (the notes
# plus 11k docstring paragraphs, asked the development questions) HNSW with efSearch = 64 keeps
# recall@10 at 0.98, while IVF needs about a tenth of its lists probed to pass 0.95: the synthetic
# clusters, where IVF wins from nprobe = 2, flatter it. IVF is the choice when notes change often (it
# is edited in place; HNSW is rebuilt) and for IVF-PQ's memory savings.
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 80, 64
IVF_NPROBE = 32
AUTO_SEARCH = {"hnsw": f"efSearch={HNSW_EF_SEARCH}", "ivf": f"nprobe={IVF_NPROBE}"}  # as the bench names them
FILES = ("chunks.jsonl", "vectors.npy", "faiss.index")


class IndexCorrupt(CorruptArtifact):
    """A stored index that fails its checks (missing file, bad checksum, wrong format)."""


# --------------------------------------------------------------------------- helpers


def _text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def note_hash(note: Note) -> str:
    return file_sha256(note.path)


def stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def _stopwords() -> list[str]:
    from bm25s.stopwords import STOPWORDS_EN

    # Question words carry no topic; without them "what" would match every "what ..." sentence.
    extra = "what why how which who whom whose when where does do did can could would should whats".split()
    return sorted(set(STOPWORDS_EN) | set(extra))


def tokenize(texts: list[str]):
    """BM25 tokens: lowercase words, English stop words removed, Snowball-stemmed."""
    return bm25s.tokenize(texts, stopwords=_stopwords(), stemmer=stemmer(), show_progress=False)


def embed(texts: list[str], progress: bool = True, batch_size: int = 64,
          settings: Settings | None = None) -> np.ndarray:
    """Normalized float32 embeddings from the selected embedder, batched, with a progress bar."""
    if not texts:
        return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    vectors = load_embedder(settings).encode(
        texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=progress, convert_to_numpy=True
    )
    if vectors.shape[1] != EMBEDDING_DIM:
        raise ValueError(f"the embedder gives {vectors.shape[1]}-dimensional vectors; the index needs {EMBEDDING_DIM}")
    return np.ascontiguousarray(vectors, dtype=np.float32)


def check_kind(kind: str) -> str:
    """``kind`` if it names an index kind, else a one-line ValueError listing them."""
    if kind not in INDEX_KINDS:
        raise ValueError(f"unknown index kind '{kind}'; choose one of {', '.join(INDEX_KINDS)}")
    return kind


def choose_kind(kind: str, n: int) -> str:
    check_kind(kind)
    if kind == "auto":
        return "flat" if n < FLAT_LIMIT else "hnsw"
    return kind


def ivf_lists(n: int) -> int:
    """Inverted lists for ``n`` vectors: about 4 sqrt(n), with at least 39 training vectors per list."""
    return max(1, min(int(4 * np.sqrt(max(n, 1))), n // 39 or 1))


def build_faiss(vectors: np.ndarray, ids: np.ndarray, kind: str) -> faiss.Index:
    """An inner-product index (cosine on normalized vectors) addressed by our 63-bit ids."""
    n, d = vectors.shape
    if kind == "flat":
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(d))
    elif kind == "hnsw":
        inner = faiss.IndexHNSWFlat(d, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        inner.hnsw.efSearch = HNSW_EF_SEARCH
        index = faiss.IndexIDMap2(inner)
    elif kind == "ivf":
        nlist = ivf_lists(n)
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        if n:
            index.train(vectors)
        index.nprobe = min(nlist, IVF_NPROBE)
    else:
        raise ValueError(f"unknown index kind '{kind}'")
    if n:
        index.add_with_ids(vectors, ids)
    return index


def build_bm25(chunks: list[Chunk]) -> bm25s.BM25:
    retriever = bm25s.BM25()
    if chunks:
        retriever.index(tokenize([c.embedding_text() for c in chunks]), show_progress=False)
    return retriever


# --------------------------------------------------------------------------- the index


@dataclass
class SearchIndex:
    """Chunks with their vectors, a FAISS index and a BM25 index, all aligned by row."""

    chunks: list[Chunk]
    vectors: np.ndarray
    faiss_index: faiss.Index
    bm25: bm25s.BM25
    manifest: dict
    path: Path | None = None
    row_of_id: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.row_of_id = {c.vector_id: i for i, c in enumerate(self.chunks)}

    def __len__(self) -> int:
        return len(self.chunks)

    @property
    def kind(self) -> str:
        return self.manifest.get("kind", "flat")

    # ---- persistence

    def save(self, store: Path) -> Path:
        """Write a new version folder and switch ``CURRENT`` to it atomically (see :mod:`rag.artifacts`)."""
        versions = VersionedStore(store, "index")
        with versions.new_version() as tmp:
            with (tmp / "chunks.jsonl").open("w", encoding="utf-8") as f:
                for chunk in self.chunks:
                    f.write(json.dumps(chunk.to_dict(), ensure_ascii=False) + "\n")
            np.save(tmp / "vectors.npy", self.vectors, allow_pickle=False)
            # Serialized in memory and written by Python, so a full disk is an OSError like any other.
            (tmp / "faiss.index").write_bytes(faiss.serialize_index(self.faiss_index).tobytes())
            self.bm25.save(str(tmp / "bm25"), show_progress=False)
            files = {
                p.relative_to(tmp).as_posix(): file_sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()
            }
            manifest = {**self.manifest, "files": files}
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        self.manifest, self.path = manifest, versions.current()
        return self.path

    @classmethod
    def load(cls, store: Path) -> SearchIndex:
        """Load the live version; raise :class:`IndexCorrupt` if anything fails its check.

        If another process switches ``CURRENT`` (and removes the old folder) while this one reads,
        the read is tried again on the new version.
        """
        versions = VersionedStore(store, "index")
        for _ in range(3):
            folder = versions.current()
            if folder is None:
                raise FileNotFoundError(f"no index at {store}")
            try:
                return cls._load_folder(folder)
            except IndexCorrupt:
                if versions.current() == folder:
                    raise
        return cls._load_folder(folder)

    @classmethod
    def _load_folder(cls, folder: Path) -> SearchIndex:
        manifest = VersionedStore(folder.parent, "index").read_manifest(folder, IndexCorrupt)
        version = manifest.get("format_version")
        if version != FORMAT_VERSION:
            raise IndexCorrupt(f"index format {version} is not {FORMAT_VERSION}")
        files = manifest.get("files") or {}
        for name in FILES:
            if name not in files:
                raise IndexCorrupt(f"manifest lists no {name}")
        for rel, digest in files.items():
            path = folder / rel
            if not path.is_file():
                raise IndexCorrupt(f"{path} is missing")
            if file_sha256(path) != digest:
                raise IndexCorrupt(f"{path} does not match its checksum")
        try:
            with (folder / "chunks.jsonl").open(encoding="utf-8") as f:
                chunks = [Chunk.from_dict(json.loads(line)) for line in f if line.strip()]
            vectors = np.load(folder / "vectors.npy", allow_pickle=False)
            faiss_index = faiss.read_index(str(folder / "faiss.index"))
            bm25 = bm25s.BM25.load(str(folder / "bm25"), show_progress=False) if chunks else build_bm25([])
        except Exception as exc:  # a file that passed its checksum but cannot be parsed
            raise IndexCorrupt(f"{folder} cannot be read: {exc}") from None
        if vectors.shape[0] != len(chunks) or faiss_index.ntotal != len(chunks):
            raise IndexCorrupt(f"{folder}: {len(chunks)} chunks, {vectors.shape[0]} vectors, "
                               f"{faiss_index.ntotal} in FAISS")
        return cls(chunks, vectors, faiss_index, bm25, manifest, folder)


# --------------------------------------------------------------------------- building and updating


@dataclass
class UpdateReport:
    """What an index update did."""

    added: list[str] = field(default_factory=list)  # note sources
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    embedded_chunks: int = 0
    total_chunks: int = 0
    rebuilt: bool = False
    reason: str = ""
    seconds: float = 0.0
    recovered: list[str] = field(default_factory=list)  # unfinished builds found and removed

    @property
    def touched(self) -> bool:
        return bool(self.added or self.changed or self.removed or self.rebuilt)

    def summary(self) -> str:
        if not self.touched:
            if self.reason:  # served as it is (another writer, or a read-only home)
                return f"index used as it is ({self.reason}): {self.total_chunks} chunks"
            return f"index is up to date ({self.total_chunks} chunks from {self.unchanged} notes)"
        what = "rebuilt" if self.rebuilt else "updated"
        why = f" ({self.reason})" if self.reason else ""
        return (
            f"index {what}{why}: {len(self.added)} added, {len(self.changed)} changed, {len(self.removed)} removed "
            f"notes; embedded {self.embedded_chunks} of {self.total_chunks} chunks in {self.seconds:.1f}s"
        )


def _config(settings: Settings, kind: str, chunk_size: int) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "embedding_model": embedder_identity(settings),
        "dimension": EMBEDDING_DIM,
        "chunk_size": chunk_size,
        "kind_requested": kind,
    }


def index_dir(settings: Settings | None = None) -> Path:
    return (settings or get_settings()).home / "index"


def update_index(
    settings: Settings | None = None,
    *,
    rebuild: bool = False,
    kind: str = "auto",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = True,
) -> tuple[SearchIndex, UpdateReport]:
    """Bring the stored index in line with the corpus, doing as little work as possible.

    While another process is writing the index, the current complete one is used as it is
    (rather than waiting); when ``MATHRAG_HOME`` cannot be written, a stored index is used
    read-only with a warning if it is stale, and without one the error names the folder.
    """
    settings = settings or get_settings()
    store = VersionedStore(index_dir(settings), "index")
    check_kind(kind)
    start = time.perf_counter()
    if not store.writable():
        return _read_only(store, settings, kind, chunk_size, start)
    if not rebuild:
        with store.locked(wait=False) as free:
            if free:
                return _update_locked(store, settings, rebuild, kind, chunk_size, progress, start)
        try:  # another process is writing: its result is not complete yet, so keep using the current one
            index = SearchIndex.load(store.root)
        except (FileNotFoundError, IndexCorrupt):
            pass  # nothing usable yet: wait for the writer below
        else:
            report = UpdateReport(unchanged=len(index.manifest.get("notes", {})), total_chunks=len(index),
                                  reason="another process is updating the index; using the current one")
            log.warning(report.reason)
            report.seconds = time.perf_counter() - start
            return index, report
    with store.locked():
        return _update_locked(store, settings, rebuild, kind, chunk_size, progress, start)


def _corpus_state(settings: Settings) -> tuple[list[Note], dict[str, str]]:
    notes = load_corpus(settings.corpus_dir, root=settings.corpus_dir.parent)
    return notes, {n.source: note_hash(n) for n in notes}


def _usable(old: SearchIndex, config: dict, report: UpdateReport) -> bool:
    """Whether ``old`` was made with these settings (else the reason goes into the report)."""
    differs = [k for k in config if old.manifest.get(k) != config[k]]
    if "embedding_model" in differs:
        report.reason = f"the embedder changed: {old.manifest.get('embedding_model')} -> {config['embedding_model']}"
        log.warning("rebuilding the index: %s", report.reason)
        return False
    if differs:
        report.reason = f"settings changed: {', '.join(differs)}"
        return False
    return True


def _compare(old_notes: dict[str, str], hashes: dict[str, str], report: UpdateReport) -> None:
    for source, digest in hashes.items():
        if source not in old_notes:
            report.added.append(source)
        elif old_notes[source] != digest:
            report.changed.append(source)
        else:
            report.unchanged += 1
    report.removed = sorted(set(old_notes) - set(hashes))


def _read_only(store: VersionedStore, settings: Settings, kind: str, chunk_size: int,
               start: float) -> tuple[SearchIndex, UpdateReport]:
    """Serve the stored index from a folder this process cannot write."""
    try:
        index = SearchIndex.load(store.root)
    except (FileNotFoundError, IndexCorrupt) as exc:
        raise StorageError(f"cannot build the index: {store.root} is not writable, and it holds no usable index "
                           f"({exc}); set MATHRAG_HOME to a writable folder") from None
    report = UpdateReport(total_chunks=len(index))
    _, hashes = _corpus_state(settings)
    _compare(index.manifest.get("notes", {}), hashes, report)
    fits = _usable(index, _config(settings, kind, chunk_size), report)
    if report.added or report.changed or report.removed or not fits:
        log.warning("%s is not writable: using the stored index, which does not match the notes (%s)",
                    store.root, report.reason or f"{len(report.added)} added, {len(report.changed)} changed, "
                                                f"{len(report.removed)} removed")
    report.reason = f"read-only: {store.root} is not writable; the stored index is used as it is"
    report.added, report.changed, report.removed = [], [], []
    report.seconds = time.perf_counter() - start
    return index, report


def _update_locked(store: VersionedStore, settings: Settings, rebuild: bool, kind: str, chunk_size: int,
                   progress: bool, start: float) -> tuple[SearchIndex, UpdateReport]:
    """Bring the index in line with the corpus while holding the store's lock: reuse, update or rebuild it."""
    report = UpdateReport()
    report.recovered = store.remove_partials()
    if report.recovered:
        log.warning("removed %d unfinished index build(s) left by an interrupted run: %s",
                    len(report.recovered), ", ".join(report.recovered))
    notes, hashes = _corpus_state(settings)
    config = _config(settings, kind, chunk_size)

    old: SearchIndex | None
    if rebuild:
        old = None
        report.reason = "--rebuild"
    else:
        old = _previous_index(store, config, report)
    report.rebuilt = old is None
    _compare(old.manifest.get("notes", {}) if old else {}, hashes, report)

    if old is not None and not (report.added or report.changed or report.removed):
        report.total_chunks = len(old)
        report.seconds = time.perf_counter() - start
        return old, report

    chunks = [c for note in notes for c in chunk_note(note, chunk_size)]
    texts = [c.embedding_text() for c in chunks]
    text_hashes = [_text_hash(t) for t in texts]
    vectors, todo = _embed_changed(chunks, texts, text_hashes, old, config["dimension"], settings, progress)
    report.embedded_chunks = len(todo)
    report.total_chunks = len(chunks)

    ids = np.array([c.vector_id for c in chunks], dtype=np.int64)
    if len(set(ids.tolist())) != len(ids):
        raise RuntimeError("two chunks share an id; chunk ids must be unique")
    resolved = choose_kind(kind, len(chunks))
    faiss_index, trained_on = _faiss_for(chunks, text_hashes, vectors, ids, todo, resolved, old)

    manifest = {**config, "kind": resolved, "notes": hashes, "chunks": len(chunks), "trained_on": trained_on,
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    index = SearchIndex(chunks, vectors, faiss_index, build_bm25(chunks), manifest)
    index.save(store.root)
    report.seconds = time.perf_counter() - start
    return index, report


def _previous_index(store: VersionedStore, config: dict, report: UpdateReport) -> SearchIndex | None:
    """The stored index to update, or None (with the reason in the report) when it must be built anew."""
    try:
        old = SearchIndex.load(store.root)
    except FileNotFoundError:
        report.reason = "no index yet"
        return None
    except IndexCorrupt as exc:
        log.warning("stored index is unusable, rebuilding: %s", exc)
        report.reason = f"unusable: {exc}"
        return None
    return old if _usable(old, config, report) else None


def _reuse_key(chunk: Chunk, text_hash: str) -> str:
    """What a vector is reused by: the chunk's id and the hash of the text it embeds."""
    return chunk.chunk_id + "\0" + text_hash


def _embed_changed(chunks: list[Chunk], texts: list[str], text_hashes: list[str], old: SearchIndex | None,
                   dimension: int, settings: Settings, progress: bool) -> tuple[np.ndarray, list[int]]:
    """The vectors of ``chunks`` and the rows that had to be embedded (the others come from ``old``)."""
    # Reuse the vector of every chunk whose id and text are unchanged.
    reusable: dict[str, np.ndarray] = {}
    if old is not None:
        for i, c in enumerate(old.chunks):
            reusable[_reuse_key(c, _text_hash(c.embedding_text()))] = old.vectors[i]
    vectors = np.zeros((len(chunks), dimension), dtype=np.float32)
    todo = []
    for i, (c, th) in enumerate(zip(chunks, text_hashes, strict=True)):
        vec = reusable.get(_reuse_key(c, th))
        if vec is None:
            todo.append(i)
        else:
            vectors[i] = vec
    if todo:
        vectors[todo] = embed([texts[i] for i in todo], progress=progress, settings=settings)
    return vectors, todo


def _faiss_for(chunks: list[Chunk], text_hashes: list[str], vectors: np.ndarray, ids: np.ndarray, todo: list[int],
               resolved: str, old: SearchIndex | None) -> tuple[faiss.Index, int]:
    """The new version's FAISS index (``old``'s, edited, where possible) and how many vectors it was trained on."""
    # IVF lists are trained once; past twice the vectors they were trained on, train them again.
    trained_on = old.manifest.get("trained_on", len(old)) if old is not None else 0
    in_place = resolved == "flat" or (resolved == "ivf" and 2 * trained_on >= len(chunks))
    if old is None or old.kind != resolved or not in_place:
        return build_faiss(vectors, ids, resolved), len(chunks)
    # Edit the existing ID map in place: drop what left or changed, add what is new.
    faiss_index = faiss.clone_index(old.faiss_index)
    new_keys = {_reuse_key(c, th) for c, th in zip(chunks, text_hashes, strict=True)}
    stale = [c.vector_id for c in old.chunks if _reuse_key(c, _text_hash(c.embedding_text())) not in new_keys]
    if stale:
        faiss_index.remove_ids(np.array(stale, dtype=np.int64))
    if todo:
        faiss_index.add_with_ids(vectors[todo], ids[todo])
    return faiss_index, trained_on
