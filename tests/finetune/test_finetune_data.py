"""`mathrag finetune data`: grounded examples, split by note with nothing leaking, reproducible, and
clear errors for a bad file."""

import json
import re

import pytest

from finetune.data import DataError, answer_in, data_dir, load_examples
from rag.answering import NOT_COVERED
from rag.chunking import chunk_corpus
from rag.corpus import load_corpus


@pytest.fixture(scope="module")
def examples(ft_settings, ft_data):
    folder = data_dir(ft_settings)
    return load_examples(folder / "train.jsonl"), load_examples(folder / "validation.jsonl")


@pytest.fixture(scope="module")
def chunks(ft_settings):
    notes = load_corpus(ft_settings.corpus_dir, root=ft_settings.corpus_dir.parent)
    return {c.chunk_id: c for c in chunk_corpus(notes)}


def test_the_split_is_by_note_and_nothing_leaks(ft_data, examples, chunks):
    train, validation = examples
    val_notes = set(ft_data["validation"]["notes"])
    assert len(val_notes) == 3 and not val_notes & set(ft_data["train"]["notes"])  # one per area
    assert {e.note for e in validation} <= val_notes and not {e.note for e in train} & val_notes
    for e in train:  # neither the answer nor any distractor of a training example comes from a validation note
        assert not {chunks[c].source for c in e.context_chunks} & val_notes, e.id
    for e in validation:
        assert {chunks[c].source for c in e.context_chunks} <= val_notes, e.id


def test_answers_come_from_the_gold_chunk_and_cite_its_number(examples, chunks):
    train, validation = examples
    kinds = {e.kind for e in train}
    assert {"definition", "formula", "negative"} <= kinds
    for e in train + validation:
        assert e.messages[-1] == {"role": "assistant", "content": e.answer}
        assert e.question in e.messages[-2]["content"]
        if e.kind == "negative":
            assert e.answer == NOT_COVERED and e.gold_chunk is None
            assert all(chunks[c].source != e.note for c in e.context_chunks)
            continue
        assert e.context_chunks[e.gold_number - 1] == e.gold_chunk
        assert f"[{e.gold_number}]" in e.answer
        sentence = e.answer.replace(f" [{e.gold_number}]", "").replace(f"\n\n[{e.gold_number}]", "")
        gold_text = " ".join(chunks[e.gold_chunk].text.replace("**", "").split())
        for piece in sentence.split("$$"):  # the prose and each displayed equation are the note's own
            assert " ".join(piece.split()) in gold_text, e.id
        if e.style == "condensed":  # the facts given to the small model hold the whole answer, cited
            assert answer_in(e.answer, e.gold_number, e.messages[-2]["content"]), e.id
        else:
            assert e.messages[0]["role"] == "system" and f"[{e.gold_number}]" in e.messages[1]["content"]


def test_the_same_seed_gives_the_same_files(ft_settings, ft_data, tmp_path):
    from finetune.data import build_dataset

    again = build_dataset(ft_settings, out=tmp_path, progress=False)
    assert again["files"] == ft_data["files"]
    other = build_dataset(ft_settings, out=tmp_path / "seed1", seed=1, progress=False)
    assert other["files"] != ft_data["files"]


def test_bad_files_are_named_with_their_line(tmp_path, examples):
    good = examples[0][0].to_json()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(good + "\n{not json\n")
    with pytest.raises(DataError, match=r"bad.jsonl:2: not an example"):
        load_examples(bad)
    record = json.loads(good)
    record["messages"] = record["messages"][:-1]  # no assistant answer to learn
    bad.write_text(json.dumps(record) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:1: messages must be chat turns ending with the assistant's"):
        load_examples(bad)
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match="empty.jsonl: the dataset is empty"):
        load_examples(tmp_path / "empty.jsonl")
    with pytest.raises(DataError, match="run `mathrag finetune data` first"):
        load_examples(tmp_path / "missing.jsonl")


def test_training_makes_the_data_when_there_is_none(ft_settings, ft_data, tmp_path):
    from finetune.data import ensure_data
    from rag.settings import Settings

    settings = Settings(home=tmp_path / "home", corpus_dir=ft_settings.corpus_dir)
    folder = ensure_data(settings, progress=False)
    assert folder == data_dir(settings)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["files"] == ft_data["files"]  # what `mathrag finetune data` writes, seed 0
    stamp = (folder / "train.jsonl").stat().st_mtime_ns
    assert ensure_data(settings, progress=False) == folder
    assert (folder / "train.jsonl").stat().st_mtime_ns == stamp  # data already there is used as it is


def test_questions_read_as_questions(examples):
    train, validation = examples
    for e in train + validation:
        q = e.question
        assert q[0].isupper() and q.endswith(("?", ".")), q
        # a heading or a sentence-initial term pasted in as it stands reads badly: "Define One step."
        assert not re.search(r"\b(Define|of|for|is|behind) (The|One|A|An|This) ", q), q
        assert not re.search(r"\b(Why|How|What) ", q[1:]), q  # a heading phrased as a question is no topic
    kinds = {}
    for e in train:
        kinds.setdefault(e.kind, []).append(e)
    assert 1 <= len(kinds["negative"]) <= max(2, 0.2 * len(train))  # refusals present, and rare


def test_answer_in_needs_every_sentence_and_the_number():
    facts = "The **variance** measures spread [2]. It is $\\sigma^2$ [2].\n\n$$\nx^2\n$$\n\n[3]"
    assert answer_in("The variance measures spread [2].", 2, facts)
    assert not answer_in("The variance measures spread [1].", 1, facts)  # number not in the facts
    assert not answer_in("The variance is the mean [2].", 2, facts)
    assert answer_in("It is $\\sigma^2$.\n\n$$\nx^2\n$$\n\n[3]", 3, facts)
