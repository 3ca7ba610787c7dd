"""The stored graph: JSON and .npy under MATHRAG_HOME with a manifest; a corrupt, old or stale graph is
rebuilt with a message, never used; unchanged concepts are not embedded again."""

import json
import shutil

import numpy as np
import pytest
from networkx.readwrite import json_graph

from graphrag.store import FILES, GraphCorrupt, ensure_graph, graph_dir, index_digest, live_graph_dir, load_graph
from rag.index import update_index
from rag.settings import Settings

NOTES = ["linear_algebra/svd.md", "linear_algebra/pca.md", "linear_algebra/projections_orthogonality.md"]


@pytest.fixture
def settings(tmp_path, copy_notes):
    return Settings(home=tmp_path / "home", corpus_dir=copy_notes(tmp_path, NOTES))


def test_build_save_load_round_trip_without_pickle(settings):
    index, _ = update_index(settings, progress=False)
    data, report = ensure_graph(index, settings, progress=False)
    assert report.built and report.embedded == len(data.concept_ids) + len(data.communities) and report.reused == 0
    folder = live_graph_dir(settings)
    assert folder.parent == graph_dir(settings)  # a version folder named by graph/CURRENT
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["index_digest"] == index_digest(index) and set(manifest["files"]) == set(FILES)
    again = load_graph(graph_dir(settings))
    assert sorted(again.graph.edges(keys=True)) == sorted(data.graph.edges(keys=True))
    assert dict(again.graph.nodes(data=True)) == dict(data.graph.nodes(data=True))
    for name in ("concept_vectors.npy", "report_vectors.npy"):
        np.load(folder / name, allow_pickle=False)  # plain arrays, no pickled objects
    g = json_graph.node_link_graph(json.loads((folder / "graph.json").read_text()), edges="edges")
    assert g.number_of_edges() == data.graph.number_of_edges()
    assert "<graphml" in (folder / "graph.graphml").read_text()[:400]
    _, second = ensure_graph(index, settings, progress=False)
    assert not second.built  # up to date: loaded, not rebuilt


@pytest.mark.parametrize("damage", ["corrupt", "missing", "old_format"])
def test_a_damaged_graph_is_detected_and_rebuilt(settings, damage, capsys):
    index, _ = update_index(settings, progress=False)
    ensure_graph(index, settings, progress=False)
    folder = live_graph_dir(settings)
    if damage == "corrupt":
        (folder / "graph.json").write_text('{"nodes": [')
    elif damage == "missing":
        (folder / "concept_vectors.npy").unlink()
    else:
        manifest = json.loads((folder / "manifest.json").read_text())
        (folder / "manifest.json").write_text(json.dumps({**manifest, "format": 0}))
    with pytest.raises(GraphCorrupt):
        load_graph(graph_dir(settings))
    data, report = ensure_graph(index, settings, progress=False)
    assert report.built and "rebuilt" in report.reason
    assert "the stored graph is unusable" in capsys.readouterr().err
    assert load_graph(graph_dir(settings)).manifest["index_digest"] == index_digest(index)


def test_an_edited_note_rebuilds_the_graph_and_reuses_unchanged_embeddings(settings):
    index, _ = update_index(settings, progress=False)
    first, _ = ensure_graph(index, settings, progress=False)
    note = settings.corpus_dir / "linear_algebra" / "pca.md"
    note.write_text(note.read_text().replace("## Intuition\n", "## Intuition\n\nA new opening sentence.\n", 1))
    index, _ = update_index(settings, progress=False)
    data, report = ensure_graph(index, settings, progress=False)
    assert report.built and report.reason == "the notes changed"
    assert report.reused >= len(first.concept_ids) - 5 and report.embedded < report.reused
    shutil.rmtree(graph_dir(settings))
    _, fresh = ensure_graph(index, settings, progress=False)
    assert fresh.reason == "no graph yet"
