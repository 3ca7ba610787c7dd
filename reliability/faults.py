"""Fault injection: do to a private copy of the project what users and machines do, and check what survives.

Each scenario runs on a :class:`Sandbox` (a copy of some notes and an empty
``MATHRAG_HOME``; the converted models are shared by a symbolic link), injects
one fault for real, and returns an :class:`Outcome`: whether the product came
through (``survived``), and anything that was lost on the way (``lost``, which
must stay empty). The test suite runs the quick scenarios; ``mathrag bench
--suite reliability`` runs them all and reports the counts.

The faults:

- ``kill -9`` of ``mathrag index`` / ``mathrag graph build`` at the worst moment (a new
  version complete on disk but not yet published, held there by
  ``reliability.pause_publish``) and at a random moment: the previous good version stays
  in use, the unfinished folder is found and removed, the next start brings things up to date;
- a truncated or byte-flipped FAISS file, chunk file, vector file, manifest or graph file:
  detected by checksum, reported, rebuilt, and the rebuilt index answers as before;
- a read-only ``MATHRAG_HOME`` (a tmpfs remounted read-only when running as root, else a
  folder without write permission): the stored index is served, an empty one gives a clear
  error, nothing changes on disk;
- a full disk (a file-size limit on the writing process, ``RLIMIT_FSIZE``): a one-line error,
  the previous index intact and still used;
- ``kill -9`` of a LoRA fine-tuning run after its first checkpoint: ``--resume`` finishes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from graphrag.store import GraphCorrupt, ensure_graph, graph_dir, load_graph
from rag.artifacts import VersionedStore
from rag.index import IndexCorrupt, SearchIndex, index_dir, update_index
from rag.retriever import Retriever
from rag.settings import REPO_ROOT, Settings

# Three real notes: enough for retrieval to tell them apart, quick to embed.
NOTES = ("neural_networks/activation_functions.md", "linear_algebra/svd.md", "optimization/adam.md")
# Fine-tuning holds out a note of every area with two or more, so its sandbox has two notes in each of three areas.
FINETUNE_NOTES = ("linear_algebra/svd.md", "linear_algebra/pca.md", "calculus/gradient.md", "calculus/chain_rule.md",
                  "information_theory/entropy.md", "information_theory/cross_entropy_kl.md")
PROBE = ("What is the derivative of tanh?", "corpus/neural_networks/activation_functions.md")
EDIT = "A sentence added while the index was being rebuilt: the quokka constant is forty-two.\n\n"


@dataclass
class Outcome:
    """What one injected fault did."""

    fault: str
    survived: bool
    detail: str
    lost: list[str] = field(default_factory=list)
    skipped: str = ""  # why the fault could not be injected on this machine
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


class Sandbox:
    """A private corpus (copies of real notes) and ``MATHRAG_HOME`` under ``root``."""

    def __init__(self, root: Path, notes: tuple[str, ...] = NOTES, models: Path | None = None):
        self.root = Path(root)
        self.corpus = self.root / "corpus"
        self.home = self.root / "home"
        for rel in notes:
            target = self.corpus / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO_ROOT / "corpus" / rel, target)
        self.home.mkdir(parents=True, exist_ok=True)
        if models is not None and models.is_dir():
            (self.home / "models").symlink_to(models.resolve(), target_is_directory=True)
        self.settings = Settings(home=self.home, corpus_dir=self.corpus)

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "MATHRAG_HOME": str(self.home), "MATHRAG_CORPUS": str(self.corpus),
                "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **extra}

    def cli(self, *args: str, env: dict | None = None, pause_before_publish: float = 0, **kwargs) -> subprocess.Popen:
        """Start ``mathrag ARGS`` in its own process group (so kill reaches every child); with
        ``pause_before_publish``, each finished version waits that long before it is published."""
        command = ["-m", "mathrag"] if not pause_before_publish else [
            "-m", "reliability.pause_publish", str(pause_before_publish)]
        return subprocess.Popen([sys.executable, *command, *args], env=env or self.env(), cwd=self.root,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                                **kwargs)

    def run(self, *args: str, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
        p = self.cli(*args, **kwargs)
        out, err = p.communicate(timeout=timeout)
        return subprocess.CompletedProcess(p.args, p.returncode, out, err)

    def edit(self, note: str = NOTES[0], text: str = EDIT) -> Path:
        """Add ``text`` at the start of the note's Intuition section (a part that is indexed)."""
        path = self.corpus / note
        path.write_text(path.read_text(encoding="utf-8").replace("## Intuition\n\n", "## Intuition\n\n" + text, 1),
                        encoding="utf-8")
        return path

    def build(self) -> SearchIndex:
        index, _ = update_index(self.settings, progress=False)
        ensure_graph(index, self.settings, progress=False)
        return index

    def index_store(self) -> VersionedStore:
        return VersionedStore(index_dir(self.settings), "index")

    def graph_store(self) -> VersionedStore:
        return VersionedStore(graph_dir(self.settings), "graph")


# --------------------------------------------------------------------------- helpers


def tree_digest(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` (lock files aside): what "nothing changed on disk" compares."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.is_symlink() and p.name != ".lock":
            out[p.relative_to(folder).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def damage(path: Path, how: str, seed: int = 0) -> None:
    """Truncate ``path`` to half its size, or flip 16 bytes in its middle half."""
    data = bytearray(path.read_bytes())
    if how == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif how == "flip":
        rng = random.Random(seed)
        for i in rng.sample(range(len(data) // 4, max(len(data) * 3 // 4, len(data) // 4 + 16)), 16):
            if i < len(data):
                data[i] ^= 0xFF
        path.write_bytes(bytes(data))
    else:
        raise ValueError(f"unknown damage '{how}'; choose truncate or flip")


def kill_group(p: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(p.pid, signal.SIGKILL)
    p.communicate()


def _wait_for(condition, p: subprocess.Popen, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        if p.poll() is not None:
            return False
        time.sleep(0.02)
    return False


def _answers_probe(settings: Settings) -> bool:
    hits = Retriever(SearchIndex.load(index_dir(settings)), settings).search(PROBE[0], k=3, mode="hybrid")
    return bool(hits) and hits[0].source == PROBE[1]


def _timed(fn):
    def run(*args, **kwargs) -> Outcome:
        start = time.perf_counter()
        outcome = fn(*args, **kwargs)
        outcome.seconds = round(time.perf_counter() - start, 2)
        return outcome

    run.__name__, run.__doc__ = fn.__name__, fn.__doc__
    return run


# --------------------------------------------------------------------------- killed builds


@_timed
def kill_while_publishing(box: Sandbox, what: str = "index", first: bool = False) -> Outcome:
    """``kill -9`` a build whose new version is complete on disk but not yet published."""
    name = f"kill -9 {'first ' if first else ''}{what} build before publishing"
    store = box.index_store() if what == "index" else box.graph_store()
    before = None
    if not first:
        box.build()
        before = store.current()
    if what == "index":
        box.edit()
        args = ("index",)
    else:
        if first:  # an index, no graph yet
            update_index(box.settings, progress=False)
        args = ("graph", "build", "--rebuild")
    p = box.cli(*args, pause_before_publish=120)
    ready = _wait_for(lambda: any((d / "manifest.json").is_file() for d in store.partials()), p, timeout=300)
    if not ready:
        out, err = p.communicate()
        return Outcome(name, False, f"the build ended before it could be killed (rc {p.returncode}): {err[-300:]}")
    served_meanwhile = ""
    if not first:  # while the writer holds the lock, readers keep the current version without waiting
        t = time.perf_counter()
        if what == "index":
            index, report = update_index(box.settings, progress=False)
            served_meanwhile = (f"; meanwhile a reader got the current index in {time.perf_counter() - t:.1f} s "
                                f"({report.reason})")
        else:
            _, report = ensure_graph(SearchIndex.load(index_dir(box.settings)), box.settings, progress=False)
            served_meanwhile = f"; meanwhile a reader got the current graph ({report.reason})"
    kill_group(p)
    left = [d.name for d in store.partials()]
    lost = []
    if not first:
        if store.current() != before:
            lost.append(f"CURRENT moved to {store.current()} though the build never finished")
        try:
            (SearchIndex.load(store.root) if what == "index" else load_graph(store.root))
        except (IndexCorrupt, GraphCorrupt, FileNotFoundError) as exc:
            lost.append(f"the previous {what} no longer loads: {exc}")
    # the next start
    index, report = update_index(box.settings, progress=False)
    data, graph_report = ensure_graph(index, box.settings, progress=False)
    recovered = report.recovered if what == "index" else graph_report.recovered
    up_to_date = ("quokka" in " ".join(c.text for c in index.chunks)) if what == "index" else (
        data.manifest.get("index_digest") is not None)
    ok = bool(left) and bool(recovered) and up_to_date and not lost and _answers_probe(box.settings)
    return Outcome(name, ok, f"left {len(left)} unfinished folder(s); the next start removed {len(recovered)} and "
                             f"{'rebuilt' if first else 'updated'} the {what}{served_meanwhile}", lost)


@_timed
def kill_at_random(box: Sandbox, seed: int = 0) -> Outcome:
    """``kill -9`` ``mathrag index --rebuild`` at a random moment (most land while it embeds)."""
    box.build()
    before = box.index_store().current()
    delay = random.Random(seed).uniform(0.5, 6.0)
    p = box.cli("index", "--rebuild")
    time.sleep(delay)
    finished = p.poll() is not None
    kill_group(p)
    lost = []
    try:
        SearchIndex.load(index_dir(box.settings))
    except (IndexCorrupt, FileNotFoundError) as exc:
        lost.append(f"the index no longer loads: {exc}")
    now = box.index_store().current()
    index, report = update_index(box.settings, progress=False)
    ok = not lost and _answers_probe(box.settings) and len(index) > 0
    state = "after it finished" if finished else ("after publishing" if now != before else "mid-build")
    return Outcome("kill -9 index rebuild at a random moment", ok,
                   f"killed {delay:.1f} s in ({state}); next start: {report.summary()}", lost)


# --------------------------------------------------------------------------- damaged files

INDEX_FILES = ("faiss.index", "chunks.jsonl", "vectors.npy", "manifest.json")
GRAPH_FILES = ("graph.json", "concept_vectors.npy", "manifest.json")


@_timed
def damaged_file(box: Sandbox, artifact: str, name: str, how: str) -> Outcome:
    """Truncate or flip bytes of one stored file; it must be detected, reported and rebuilt."""
    fault = f"{how} {artifact}/{name}"
    index = update_index(box.settings, progress=False)[0]
    ensure_graph(index, box.settings, progress=False)
    reference = [c.chunk_id for c in index.chunks]
    store = box.index_store() if artifact == "index" else box.graph_store()
    damage(store.current() / name, how)
    try:
        SearchIndex.load(store.root) if artifact == "index" else load_graph(store.root)
        return Outcome(fault, False, "the damage was not detected: the damaged files loaded")
    except (IndexCorrupt, GraphCorrupt) as exc:
        detected = str(exc)
    index, report = update_index(box.settings, progress=False)
    data, graph_report = ensure_graph(index, box.settings, progress=False)
    rebuilt = report.rebuilt if artifact == "index" else graph_report.built
    lost = [] if [c.chunk_id for c in index.chunks] == reference else ["the rebuilt index holds other chunks"]
    if artifact == "graph" and not data.graph.number_of_nodes():
        lost.append("the rebuilt graph is empty")
    ok = rebuilt and not lost and _answers_probe(box.settings)
    where = detected.replace(str(box.root), "…")
    return Outcome(fault, ok, f"detected ({where[:140]}); rebuilt", lost)


# --------------------------------------------------------------------------- no room to write


def _make_read_only(folder: Path) -> tuple[str, object]:
    """Make ``folder`` (already holding artifacts) unwritable; returns (how, undo) or ("", reason)."""
    if os.geteuid() != 0:
        for p in [folder, *folder.rglob("*")]:
            if p.is_dir() and not p.is_symlink():
                p.chmod(0o555)
        return "chmod a-w", lambda: [p.chmod(0o755) for p in [folder, *folder.rglob("*")]
                                     if p.is_dir() and not p.is_symlink()]
    # root ignores permissions: move the folder onto a tmpfs and remount it read-only
    saved = folder.with_name(folder.name + ".saved")
    shutil.move(folder, saved)
    folder.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(folder)], capture_output=True,
                           text=True)
    if mount.returncode != 0:
        folder.rmdir()
        shutil.move(saved, folder)
        return "", f"cannot mount a tmpfs here ({mount.stderr.strip()[:80]})"
    for p in saved.iterdir():
        (shutil.copytree(p, folder / p.name, symlinks=True) if p.is_dir() and not p.is_symlink()
         else shutil.copy(p, folder / p.name, follow_symlinks=False))
    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)

    def undo():
        subprocess.run(["umount", str(folder)], check=False)
        folder.rmdir()
        shutil.move(saved, folder)

    return "a tmpfs remounted read-only", undo


@_timed
def read_only_home(box: Sandbox) -> Outcome:
    """An unwritable MATHRAG_HOME: the stored index is served; without one, a clear error."""
    fault = "read-only MATHRAG_HOME"
    box.build()
    how, undo = _make_read_only(box.home)
    if not how:
        return Outcome(fault, True, "", skipped=str(undo))
    try:
        before = tree_digest(box.home)
        box.edit()
        used = box.run("index")
        search = box.run("search", PROBE[0], "--json")
        index, report = update_index(box.settings, progress=False)
        after = tree_digest(box.home)
        empty = box.root / "empty-home"
        empty.mkdir()
        e_how, e_undo = _make_read_only(empty)
        try:
            refused = box.run("index", env=box.env(MATHRAG_HOME=str(empty)))
        finally:
            if e_how:
                e_undo()
    finally:
        undo()
    error = refused.stderr.strip().splitlines()
    ok = (used.returncode == 0 and "read-only" in used.stdout and search.returncode == 0 and PROBE[1] in search.stdout
          and "read-only" in report.reason and refused.returncode == 2 and len(error) == 1
          and "not writable" in error[0] and before == after)
    lost = [] if before == after else ["files under MATHRAG_HOME changed"]
    said = error[-1].replace(str(box.root), "…") if error else ""
    return Outcome(fault, ok, f"{how}: `mathrag index` served the stored index (rc {used.returncode}); an empty "
                              f"read-only home: rc {refused.returncode}, \"{said}\"", lost)


def _file_size_limit(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
    return apply


@_timed
def full_disk(box: Sandbox, limit: int = 16 * 1024) -> Outcome:
    """Writing the index fails part-way (no room): a one-line error, the previous index intact and used."""
    fault = "full disk while writing the index"
    box.build()
    store = box.index_store()
    before, current = tree_digest(store.root), store.current()
    box.edit()
    result = box.run("index", preexec_fn=_file_size_limit(limit))
    error = [line for line in result.stderr.strip().splitlines() if line.startswith("mathrag")]
    after = tree_digest(store.root)
    lost = [] if before == after and store.current() == current else ["the stored index changed"]
    ok = (result.returncode == 2 and len(error) == 1 and "cannot write" in error[0]
          and "previous index is still in use" in error[0] and not store.partials() and not lost
          and _answers_probe(box.settings))
    said = (error[-1] if error else result.stderr[-200:]).replace(str(box.root), "…")
    return Outcome(fault, ok, f"rc {result.returncode}: \"{said}\"", lost)


# --------------------------------------------------------------------------- fine-tuning


FINETUNE_ARGS = ("--max-steps", "6", "--batch-size", "2", "--max-train-examples", "12", "--eval-examples", "4",
                 "--eval-steps", "3", "--save-steps", "2", "--logging-steps", "1", "--max-length", "320")


def _last_json(text: str) -> dict | None:
    """The last JSON object printed in ``text`` (one that starts on a line of its own)."""
    lines = text.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith("{"):
            try:
                return json.loads("\n".join(lines[i:]))
            except ValueError:
                continue
    return None


@_timed
def kill_finetune(box: Sandbox) -> Outcome:
    """``kill -9`` a LoRA run after its first checkpoint; ``--resume`` continues it to the end.

    ``box`` needs notes that fine-tuning can split (see ``FINETUNE_NOTES``).
    """
    fault = "kill -9 LoRA fine-tuning after a checkpoint"
    p = box.cli("finetune", "lora", "--name", "crash", *FINETUNE_ARGS)
    runs = box.home / "finetune" / "runs" / "crash"
    if not _wait_for(lambda: any((c / "trainer_state.json").is_file() for c in runs.glob("checkpoint-*")), p, 900):
        _, err = p.communicate()
        said = [line for line in err.splitlines() if line.startswith("mathrag")] or err.splitlines()[-1:]
        return Outcome(fault, False, f"no checkpoint before the run ended (rc {p.returncode}): {said[-1][:300]}")
    time.sleep(0.5)
    kill_group(p)
    checkpoint = max(int(c.name.split("-")[1]) for c in runs.glob("checkpoint-*"))
    adapter_before = (box.home / "adapters" / "crash").exists()
    resumed = box.run("finetune", "lora", "--name", "crash", "--resume", "--json", *FINETUNE_ARGS, timeout=900)
    card = _last_json(resumed.stdout)  # the Trainer prints its log lines to stdout before the run card
    if card is None:
        return Outcome(fault, False, f"--resume failed (rc {resumed.returncode}): {resumed.stderr[-300:]}")
    metrics = card.get("metrics", {})
    ok = (resumed.returncode == 0 and not adapter_before and metrics.get("resumed") and metrics.get("steps") == 6
          and (box.home / "adapters" / "crash" / "adapter_config.json").is_file())
    return Outcome(fault, bool(ok), f"killed after checkpoint {checkpoint} (no half-written adapter: "
                                    f"{not adapter_before}); --resume ran to step {metrics.get('steps')}")


# --------------------------------------------------------------------------- editing while serving


@_timed
def edit_while_serving(box: Sandbox) -> Outcome:
    """A note edited while an answer streams: that answer finishes on the old index, the next one sees the edit."""
    from app.engine import Engine

    fault = "note edited while an answer is being written"
    box.build()
    engine = Engine.load(box.settings, warm=False)
    old = engine.retriever
    stream = engine.ask(PROBE[0], generator="extractive", k=5)
    first = next(stream)  # retrieval has run: the answer is under way
    box.edit(text="The wombat lemma says that the derivative of tanh is one minus tanh squared.\n\n")
    message = engine.refresh()
    final = [first, *stream][-1]
    after = next(iter(engine.ask("What does the wombat lemma say about the derivative of tanh?",
                                 generator="extractive", k=3)))
    finished_old = final.done and not any("wombat" in h.text for h in final.hits)
    sees_new = any("wombat" in h.text for h in after.hits)
    ok = bool(message) and finished_old and sees_new and engine.retriever is not old
    return Outcome(fault, ok, f"in-flight answer finished on the old index: {finished_old}; the next question "
                              f"found the edit: {sees_new} ({message})")
