"""The stored index: built once, updated incrementally, verified on load, rebuilt when broken."""

import json
import shutil

import faiss
import numpy as np
import pytest

from rag.artifacts import VersionedStore
from rag.index import IndexCorrupt, SearchIndex, index_dir, update_index
from rag.settings import REPO_ROOT


def live_folder(settings):
    return VersionedStore(index_dir(settings)).current()


def test_build_then_up_to_date(small_settings):
    index, report = update_index(small_settings, progress=False)
    assert report.rebuilt and len(report.added) == 5 and report.embedded_chunks == len(index) > 20
    assert index.faiss_index.ntotal == len(index) == index.vectors.shape[0]
    assert np.allclose(np.linalg.norm(index.vectors, axis=1), 1.0, atol=1e-5)
    manifest = json.loads((live_folder(small_settings) / "manifest.json").read_text())
    assert manifest["embedding_model"] == "sentence-transformers/all-MiniLM-L6-v2" and manifest["dimension"] == 384
    assert set(manifest["notes"]) == {c.source for c in index.chunks}
    assert {"chunks.jsonl", "vectors.npy", "faiss.index"} <= set(manifest["files"])

    again, report = update_index(small_settings, progress=False)
    assert not report.touched and report.embedded_chunks == 0 and len(again) == len(index)


def test_changing_one_note_reembeds_only_that_note(small_settings):
    index, _ = update_index(small_settings, progress=False)
    path = small_settings.corpus_dir / "optimization/adam.md"
    text = path.read_text()
    path.write_text(text.replace("## Intuition\n", "## Intuition\n\nA brand new opening sentence about Adam.\n", 1))
    updated, report = update_index(small_settings, progress=False)
    assert report.changed == ["corpus/optimization/adam.md"] and not report.added and not report.removed
    adam_chunks = [c for c in updated.chunks if c.source == "corpus/optimization/adam.md"]
    assert 1 <= report.embedded_chunks <= len(adam_chunks)
    # Vectors of the other notes were reused, not recomputed.
    old = {c.chunk_id: v for c, v in zip(index.chunks, index.vectors, strict=True)}
    for c, v in zip(updated.chunks, updated.vectors, strict=True):
        if c.source != "corpus/optimization/adam.md":
            assert np.array_equal(old[c.chunk_id], v)
    hits = updated.faiss_index.search(updated.vectors[:1], 1)[1]
    assert hits[0][0] == updated.chunks[0].vector_id


def test_adding_and_deleting_notes(small_settings):
    index, _ = update_index(small_settings, progress=False)
    svd = small_settings.corpus_dir / "linear_algebra/svd.md"
    svd.unlink()
    new = small_settings.corpus_dir / "calculus/chain_rule.md"
    new.parent.mkdir(parents=True)
    shutil.copy(REPO_ROOT / "corpus/calculus/chain_rule.md", new)
    updated, report = update_index(small_settings, progress=False)
    assert report.removed == ["corpus/linear_algebra/svd.md"] and report.added == ["corpus/calculus/chain_rule.md"]
    assert report.embedded_chunks == sum(c.source == "corpus/calculus/chain_rule.md" for c in updated.chunks)
    assert not any(c.source.endswith("svd.md") for c in updated.chunks)
    assert updated.faiss_index.ntotal == len(updated)
    # Every FAISS id maps to a chunk: the removed ones are really gone.
    _, ids = updated.faiss_index.search(updated.vectors, 1)
    assert set(ids[:, 0].tolist()) <= set(updated.row_of_id)


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_corrupt_files_are_detected_and_rebuilt(small_settings, damage, caplog):
    update_index(small_settings, progress=False)
    target = live_folder(small_settings) / "faiss.index"
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:100])
    elif damage == "flip":
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
    else:
        target.unlink()
    with pytest.raises(IndexCorrupt):
        SearchIndex.load(index_dir(small_settings))
    index, report = update_index(small_settings, progress=False)
    assert report.rebuilt and "unusable" in report.reason
    assert "stored index is unusable" in caplog.text
    assert SearchIndex.load(index_dir(small_settings)).faiss_index.ntotal == len(index)


def test_corrupt_manifest_is_detected(small_settings):
    update_index(small_settings, progress=False)
    (live_folder(small_settings) / "manifest.json").write_text("{not json")
    with pytest.raises(IndexCorrupt, match="manifest.json does not match its checksum"):
        SearchIndex.load(index_dir(small_settings))


def test_rebuild_flag_and_old_versions_are_cleaned(small_settings):
    update_index(small_settings, progress=False)
    first = live_folder(small_settings)
    _, report = update_index(small_settings, rebuild=True, progress=False)
    assert report.rebuilt and report.reason == "--rebuild"
    assert not first.exists() and live_folder(small_settings).exists()
    assert [p.name for p in index_dir(small_settings).iterdir() if p.is_dir()] == [live_folder(small_settings).name]


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_index_kinds_agree_on_the_best_match(small_settings, kind):
    index, _ = update_index(small_settings, kind=kind, progress=False)
    assert index.kind == kind
    inner = faiss.downcast_index(index.faiss_index.index) if hasattr(index.faiss_index, "index") else index.faiss_index
    expected = {"flat": faiss.IndexFlatIP, "hnsw": faiss.IndexHNSWFlat, "ivf": faiss.IndexIVFFlat}[kind]
    assert isinstance(faiss.downcast_index(inner), expected)
    _, ids = index.faiss_index.search(index.vectors[:10], 1)
    assert [index.row_of_id[int(i)] for i in ids[:, 0]] == list(range(10))


def test_unknown_kind_is_a_clear_error(small_settings):
    with pytest.raises(ValueError, match="unknown index kind 'fast'; choose one of auto, flat, hnsw, ivf"):
        update_index(small_settings, kind="fast", progress=False)


def test_nothing_is_pickled(small_settings):
    update_index(small_settings, progress=False)
    for path in live_folder(small_settings).rglob("*.npy"):
        np.load(path, allow_pickle=False)  # raises if an object array (pickle) was stored


def test_auto_is_exact_below_the_flat_limit_and_hnsw_above():
    from rag.index import FLAT_LIMIT, choose_kind, ivf_lists

    assert choose_kind("auto", FLAT_LIMIT - 1) == "flat" and choose_kind("auto", FLAT_LIMIT) == "hnsw"
    assert choose_kind("ivf", 10) == "ivf"  # an explicit choice is kept at any size
    assert ivf_lists(1_000_000) == 4000 and ivf_lists(100) == 2 and ivf_lists(0) == 1


def test_ivf_is_edited_in_place_and_trained_again_once_the_corpus_doubles(small_settings):
    index, _ = update_index(small_settings, kind="ivf", progress=False)
    trained = index.manifest["trained_on"]
    assert trained == len(index)
    note = sorted(small_settings.corpus_dir.rglob("*.md"))[0]
    note.write_text(note.read_text(encoding="utf-8") + "\nOne more sentence about the subject.\n", encoding="utf-8")
    edited, report = update_index(small_settings, kind="ivf", progress=False)
    assert report.changed and edited.manifest["trained_on"] == trained  # the same lists, edited
    have = {p.name for p in small_settings.corpus_dir.rglob("*.md")}
    more = [p for p in sorted((REPO_ROOT / "corpus").rglob("*.md")) if p.name not in have][:15]
    for path in more:
        dest = small_settings.corpus_dir / path.relative_to(REPO_ROOT / "corpus")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, dest)
    grown, _ = update_index(small_settings, kind="ivf", progress=False)
    assert len(grown) > 2 * trained and grown.manifest["trained_on"] == len(grown)  # trained again
    _, ids = grown.faiss_index.search(grown.vectors[-5:], 1)
    assert [grown.row_of_id[int(i)] for i in ids[:, 0]] == list(range(len(grown) - 5, len(grown)))


def test_a_staged_folder_replaces_its_target_whole_or_not_at_all(tmp_path):
    from rag.artifacts import staged_folder

    target = tmp_path / "adapter"
    with staged_folder(target) as tmp:
        (tmp / "weights").write_text("v1")
    assert (target / "weights").read_text() == "v1"
    with pytest.raises(RuntimeError, match="killed"), staged_folder(target) as tmp:
        (tmp / "weights").write_text("half of v2")
        raise RuntimeError("killed while writing")
    assert (target / "weights").read_text() == "v1"  # the old artifact is kept, whole
    with staged_folder(target) as tmp:
        (tmp / "weights").write_text("v2")
    assert (target / "weights").read_text() == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]  # nothing left beside it
