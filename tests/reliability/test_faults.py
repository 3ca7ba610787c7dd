"""Faults injected for real: kill -9 mid-build, damaged files, a read-only home, a full disk, edits while serving."""

import pytest

from rag.artifacts import StorageError, write_atomic
from rag.index import SearchIndex, index_dir, update_index
from reliability import faults


@pytest.mark.parametrize("what", ["index", "graph"])
def test_kill_9_before_publishing_keeps_the_previous_version_and_the_next_start_recovers(box, what):
    outcome = faults.kill_while_publishing(box, what)
    assert outcome.survived, outcome
    assert outcome.lost == []
    assert "another process" in outcome.detail  # a reader did not wait for the killed writer


def test_kill_9_of_the_first_build_is_rebuilt_at_the_next_start(box):
    outcome = faults.kill_while_publishing(box, "index", first=True)
    assert outcome.survived, outcome
    assert "removed 1" in outcome.detail


def test_kill_9_at_a_random_moment_leaves_a_usable_index(box):
    outcome = faults.kill_at_random(box, seed=3)
    assert outcome.survived and outcome.lost == [], outcome


# Four of the fourteen cases; `mathrag bench --suite reliability` runs every file both ways.
@pytest.mark.parametrize(("artifact", "name", "how"), [
    ("index", "faiss.index", "flip"), ("index", "chunks.jsonl", "truncate"), ("index", "manifest.json", "flip"),
    ("graph", "concept_vectors.npy", "flip"),
])
def test_a_damaged_file_is_detected_by_checksum_and_rebuilt(box, artifact, name, how):
    outcome = faults.damaged_file(box, artifact, name, how)
    assert outcome.survived and outcome.lost == [], outcome
    assert "does not match its checksum" in outcome.detail


def test_a_read_only_home_serves_the_stored_index_and_an_empty_one_is_a_clear_error(box):
    outcome = faults.read_only_home(box)
    if outcome.skipped:
        pytest.skip(outcome.skipped)
    assert outcome.survived and outcome.lost == [], outcome


def test_a_full_disk_is_one_line_and_the_previous_index_stays(box):
    outcome = faults.full_disk(box)
    assert outcome.survived and outcome.lost == [], outcome
    assert "the previous index is still in use" in outcome.detail


def test_write_atomic_leaves_the_old_file_when_the_write_fails(tmp_path):
    target = write_atomic(tmp_path / "report.json", "old")

    def broken(tmp):
        tmp.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(StorageError, match=r"report.json: No space left on device .*previous file is unchanged"):
        write_atomic(target, broken)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_an_answer_under_way_finishes_on_the_old_index_and_the_next_sees_the_edit(box):
    outcome = faults.edit_while_serving(box)
    assert outcome.survived, outcome


def test_the_running_app_picks_up_an_edited_note(box, port):
    """The server's watcher updates the index while it serves; the API then finds the new sentence."""
    import time

    from gradio_client import Client

    from app.engine import Engine
    from app.server import launch

    box.build()
    engine = Engine.load(box.settings, warm=False)
    demo, url = launch(engine, port=port, block=False, watch=0.3)
    try:
        client = Client(url, verbose=False)
        question = "What does the platypus rule say about the derivative of tanh?"
        assert "platypus" not in str(client.predict(question, "bm25", "extractive", api_name="/chat"))
        box.edit(text="The platypus rule says that the derivative of tanh is one minus tanh squared.\n\n")
        deadline, found = time.monotonic() + 120, False
        while time.monotonic() < deadline and not found:
            time.sleep(0.5)
            found = "platypus" in client.predict(question, "bm25", "extractive", api_name="/chat")["answer"]
        assert found, "the edit never reached the served index"
        assert len(SearchIndex.load(index_dir(box.settings))) == len(update_index(box.settings, progress=False)[0])
    finally:
        demo.close()

