"""Embedding fine-tuning: a real MiniLM trained for two steps on the data of the small fine-tuning corpus
(``ft_settings``), saved as a sentence-transformers folder with its run card, measured, and selected for the
index with MATHRAG_EMBEDDER."""

import dataclasses
import hashlib
import json

import numpy as np
import pytest

from rag.settings import Settings

TEXT = "The singular value decomposition factors a matrix into rotations and a scaling."


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def trained(ft_settings, ft_data):
    """(settings, run card) after training the embedder 'tiny' for two steps on the small corpus's data."""
    from finetune.embed import train_embedder

    settings = dataclasses.replace(ft_settings, embedder="")
    card = train_embedder(settings, "tiny", max_steps=2, batch_size=8, progress=False)
    return settings, card


def test_training_pairs_skip_negatives_and_repeats(trained):
    from finetune.data import data_dir, load_examples
    from finetune.embed import corpus_chunks, training_pairs

    settings, card = trained
    examples = load_examples(data_dir(settings) / "train.jsonl")
    chunks = corpus_chunks(settings)
    assert any(e.kind == "negative" for e in examples)
    pairs = training_pairs(examples + examples, chunks)  # every example twice: each pair still once
    expected = {(e.question, chunks[e.gold_chunk].embedding_text()) for e in examples if e.kind != "negative"}
    assert len(pairs) == len(set(pairs)) == len(expected) == card["pairs"]
    assert set(pairs) == expected
    assert training_pairs([e for e in examples if e.kind == "negative"], chunks) == []


def test_saved_embedder_is_a_sentence_transformers_folder_with_its_run_card(trained):
    from sentence_transformers import SentenceTransformer

    from finetune.data import data_dir
    from rag.models import EMBEDDING_MODEL_ID, embedders_dir, embedding_model_dir

    settings, card = trained
    folder = embedders_dir(settings) / "tiny"
    assert card["path"] == str(folder)
    assert (folder / "model.safetensors").stat().st_size > 1_000_000
    assert not list(folder.glob("*.bin")) and not list(folder.rglob("*.pkl"))
    assert [p.name for p in embedders_dir(settings).iterdir()] == ["tiny"]  # no temp folder left behind
    saved = json.loads((folder / "mathrag_run.json").read_text())
    assert saved == json.loads(json.dumps(card))
    assert saved["base_model"] == EMBEDDING_MODEL_ID
    assert saved["data"]["train_sha256"] == sha256(data_dir(settings) / "train.jsonl")
    assert saved["steps"] == 2 and saved["config"]["batch_size"] == 8 and saved["pairs"] > 8
    assert saved["seconds"] > 0 and saved["losses"]
    for when in ("before", "after"):
        assert saved[when]["questions"] > 0 and saved[when]["chunks"] > saved[when]["questions"] / 10

    tuned = SentenceTransformer(str(folder), device="cpu").encode([TEXT], normalize_embeddings=True)[0]
    base = SentenceTransformer(str(embedding_model_dir()), device="cpu").encode([TEXT], normalize_embeddings=True)[0]
    assert np.abs(tuned - base).max() > 1e-5  # training moved the weights
    assert float(tuned @ base) > 0.9  # two small steps: still close to MiniLM


def test_evaluate_embedder_measures_recall_among_all_chunks(trained):
    from finetune.data import data_dir, load_examples
    from finetune.embed import evaluate_embedder

    settings, card = trained
    validation = load_examples(data_dir(settings) / "validation.jsonl")
    base = evaluate_embedder(settings, None, validation)
    tuned = evaluate_embedder(settings, card["path"], validation)
    for metrics in (base, tuned):
        assert {"recall@1", "recall@5", "mrr"} <= metrics.keys()
        assert all(0.0 <= metrics[k] <= 1.0 for k in ("recall@1", "recall@5", "mrr"))
        assert metrics["recall@1"] <= metrics["mrr"] and metrics["recall@1"] <= metrics["recall@5"]
        assert metrics["questions"] == len({(e.question, e.gold_chunk) for e in validation if e.kind != "negative"})
    assert base["recall@5"] > 0.3  # MiniLM does find most gold chunks: the ranks are real
    # The run card's numbers are these: before = base MiniLM, after = the saved weights.
    for key in ("recall@1", "recall@5", "mrr"):
        assert base[key] == pytest.approx(card["before"][key], abs=1e-6)
        assert tuned[key] == pytest.approx(card["after"][key], abs=1e-6)
    with pytest.raises(ValueError, match="holds no sentence-transformers model"):
        evaluate_embedder(settings, settings.home / "nothing-here", validation)


def test_index_follows_mathrag_embedder(trained, monkeypatch):
    from rag.index import update_index
    from rag.models import EMBEDDING_MODEL_ID, ModelNotFound, embedders_dir, load_embedder

    settings, _ = trained
    monkeypatch.delenv("MATHRAG_EMBEDDER", raising=False)
    base_settings = Settings(home=settings.home, corpus_dir=settings.corpus_dir)
    assert base_settings.embedder == ""
    index, report = update_index(base_settings, progress=False)
    assert index.manifest["embedding_model"] == EMBEDDING_MODEL_ID
    base_vectors = index.vectors.copy()

    monkeypatch.setenv("MATHRAG_EMBEDDER", "tiny")
    tuned_settings = Settings(home=settings.home, corpus_dir=settings.corpus_dir)
    assert tuned_settings.embedder == "tiny"
    folder = embedders_dir(settings) / "tiny"
    index, report = update_index(tuned_settings, progress=False)
    assert report.rebuilt and report.embedded_chunks == report.total_chunks == len(index)
    assert report.reason.startswith(f"the embedder changed: {EMBEDDING_MODEL_ID} -> {folder.resolve()}")
    assert index.manifest["embedding_model"] == f"{folder.resolve()}@sha256:{sha256(folder / 'model.safetensors')[:16]}"
    model = load_embedder(tuned_settings)
    assert model is not load_embedder(base_settings)
    expected = model.encode([index.chunks[0].embedding_text()], normalize_embeddings=True)[0]
    np.testing.assert_allclose(index.vectors[0], expected, atol=1e-5)
    assert np.abs(index.vectors - base_vectors).max() > 1e-5

    _, again = update_index(tuned_settings, progress=False)
    assert not again.touched  # same embedder, same notes: nothing to do

    missing = Settings(home=settings.home, corpus_dir=settings.corpus_dir, embedder="nope")
    with pytest.raises(ModelNotFound, match=str(embedders_dir(settings) / "nope")):
        update_index(missing, progress=False)
    index, _ = update_index(tuned_settings, progress=False)  # the index built before is still there
    assert index.manifest["embedding_model"].startswith(str(folder.resolve()))

    monkeypatch.delenv("MATHRAG_EMBEDDER")
    index, report = update_index(Settings(home=settings.home, corpus_dir=settings.corpus_dir), progress=False)
    assert report.rebuilt and "the embedder changed" in report.reason
    assert index.manifest["embedding_model"] == EMBEDDING_MODEL_ID


def test_existing_name_is_refused_unless_overwrite(trained):
    from finetune.embed import train_embedder
    from rag.models import embedders_dir, load_embedder

    settings, _ = trained
    folder = embedders_dir(settings) / "tiny"
    weights = sha256(folder / "model.safetensors")
    with pytest.raises(ValueError, match="an embedder named 'tiny' exists") as info:
        train_embedder(settings, "tiny", max_steps=1, batch_size=4, progress=False)
    assert "\n" not in str(info.value)
    assert sha256(folder / "model.safetensors") == weights  # refused: nothing touched

    tuned = Settings(home=settings.home, corpus_dir=settings.corpus_dir, embedder="tiny")
    old_model = load_embedder(tuned)
    card = train_embedder(settings, "tiny", max_steps=1, batch_size=4, overwrite=True, progress=False)
    assert card["steps"] == 1
    assert json.loads((folder / "mathrag_run.json").read_text())["steps"] == 1
    assert sha256(folder / "model.safetensors") != weights
    assert [p.name for p in embedders_dir(settings).iterdir()] == ["tiny"]
    assert load_embedder(tuned) is not old_model  # the cache follows the new weights
