"""Building the graph: every note is a node, every edge has a type and provenance, aliases match on word
boundaries, prerequisite cycles are reported without stopping the build, communities are deterministic."""

import re
import shutil

import networkx as nx
import pytest

from graphrag.build import EDGE_TYPES, MIN_NPMI, build_graph, linked_slugs, prerequisite_cycles
from graphrag.communities import RESOLUTIONS, detect
from graphrag.concepts import ConceptMatcher, extract_concepts, note_concept
from rag.chunking import chunk_corpus
from rag.corpus import load_corpus
from rag.settings import REPO_ROOT


def test_every_note_is_a_node_with_its_summary(full_graph):
    g, notes, _ = full_graph
    for note in notes:
        data = g.nodes[f"note:{note.slug}"]
        assert data["kind"] == "note" and data["name"] == note.title and data["description"] == note.summary
        assert data["source"] == note.source and data["area"] == note.area


def test_every_edge_is_typed_and_has_provenance_among_the_chunks(full_graph):
    g, _, chunks = full_graph
    ids = {c.chunk_id for c in chunks}
    types = set()
    for u, v, key, data in g.edges(keys=True, data=True):
        assert key == data["type"] in EDGE_TYPES
        assert data["provenance"] and set(data["provenance"]) <= ids, (u, v, key)
        assert data["weight"] > 0 and data["evidence"]
        types.add(key)
    assert types == set(EDGE_TYPES)


def test_prerequisite_and_link_edges_follow_the_notes(full_graph):
    g, notes, _ = full_graph
    slugs = {n.slug for n in notes}
    for note in notes:
        for pre in note.prerequisites:
            assert g.has_edge(f"note:{pre}", f"note:{note.slug}", key="prerequisite_of")
        for target, _ in linked_slugs(note, slugs):
            assert g.has_edge(f"note:{note.slug}", f"note:{target}", key="links_to")
    expected = sum(len([p for p in n.prerequisites if p in slugs]) for n in notes)
    assert sum(1 for *_, k in g.edges(keys=True) if k == "prerequisite_of") == expected


def test_the_notes_prerequisites_are_acyclic(full_graph):
    g, _, _ = full_graph
    assert g.graph["cycles"] == [] and prerequisite_cycles(g) == []


def test_related_edges_are_kept_by_normalized_pmi(full_graph):
    g, _, chunks = full_graph
    related = [(u, v, d) for u, v, k, d in g.edges(keys=True, data=True) if k == "related"]
    assert related
    for u, v, d in related:
        assert MIN_NPMI <= d["weight"] <= 1.0 and len(d["provenance"]) >= 2 and u < v
    # recompute one edge's NPMI by hand from the chunk counts
    u, v, d = max(related, key=lambda t: len(t[2]["provenance"]))
    import math

    def chunks_with(concept):
        mentioned = {a for a, b, k in g.in_edges(concept, keys=True) if k == "mentions"}
        own = {c.chunk_id for c in chunks if concept == f"note:{c.slug}"}
        return mentioned | own

    a, b, n = chunks_with(u), chunks_with(v), len(chunks)
    p_ab = len(a & b) / n
    npmi = math.log(p_ab / (len(a) / n * len(b) / n)) / -math.log(p_ab)
    assert d["weight"] == pytest.approx(npmi, abs=1e-4)


def test_defined_terms_come_from_bold_words_in_definition_sections(full_graph):
    g, _, _ = full_graph
    svd_terms = {g.nodes[v]["name"] for _, v, k in g.out_edges("note:svd", keys=True) if k == "defines"}
    assert {"left singular vectors", "right singular vectors"} <= svd_terms
    # "**singular value decomposition**" in the SVD note is the note concept itself, not a new term
    assert "term:singular-value-decomposition" not in g
    # run-in labels of the pitfalls sections ("**Underflow.**") are not terms
    assert not any(d["kind"] == "term" and d["name"].endswith(".") for _, d in g.nodes(data=True))
    # terms named in many chunks say nothing and are dropped
    assert "term:vector" in g.graph["generic_terms"] and "term:vector" not in g


def test_aliases_and_acronyms_match_case_insensitively_on_word_boundaries(full_graph):
    _, notes, _ = full_graph
    svd = next(n for n in notes if n.slug == "svd")
    concept = note_concept(svd)
    assert {"svd", "singular value decomposition"} <= {a.lower() for a in concept.aliases}
    concepts, _ = extract_concepts(notes)
    m = ConceptMatcher(concepts)
    found = [cid for cid, _, _ in m.find("the svd of X, two SVDs, Singular Value Decompositions, SVDish, MSVD")]
    assert found == ["note:svd", "note:svd", "note:svd"]
    text = "Use Kullback-Leibler divergence; also gradient descent, not gradient alone."
    names = [(cid, text[s:e]) for cid, s, e in m.find(text)]
    assert ("note:gradient_descent", "gradient descent") in names  # the longest name wins
    assert ("note:gradient", "gradient") in names
    assert m.find("$\\nabla f$ and $$\\operatorname{SVD}$$") == []  # math is not prose


def test_a_prerequisite_cycle_is_reported_and_the_graph_still_builds(tmp_path):
    corpus = tmp_path / "corpus" / "linear_algebra"
    corpus.mkdir(parents=True)
    for slug in ("vectors_dot_product", "matrices_linear_maps"):
        shutil.copy(REPO_ROOT / "corpus" / "linear_algebra" / f"{slug}.md", corpus / f"{slug}.md")
    first = corpus / "vectors_dot_product.md"
    first.write_text(re.sub(r"^prerequisites: \[.*\]$", "prerequisites: [matrices_linear_maps]",
                            first.read_text(), count=1, flags=re.M))
    second = corpus / "matrices_linear_maps.md"
    second.write_text(re.sub(r"^prerequisites: \[.*\]$", "prerequisites: [vectors_dot_product]",
                             second.read_text(), count=1, flags=re.M))
    notes = load_corpus(tmp_path / "corpus", root=tmp_path)
    g = build_graph(notes, chunk_corpus(notes))
    assert g.graph["cycles"] == [["note:matrices_linear_maps", "note:vectors_dot_product"]]
    assert g.number_of_nodes() > 2


def test_communities_are_deterministic_partitions_at_each_level(full_graph):
    g, _, chunks = full_graph
    first, rank = detect(g, chunks)
    again, _ = detect(g, chunks)
    assert [c.members for c in first] == [c.members for c in again]
    concepts = {n for n, k in g.nodes(data="kind") if k != "chunk"}
    for level in range(len(RESOLUTIONS)):
        parts = [set(c.members) for c in first if c.level == level]
        assert set().union(*parts) == concepts and sum(map(len, parts)) == len(concepts)
    sizes = [sum(1 for c in first if c.level == lvl) for lvl in range(len(RESOLUTIONS))]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]  # a higher resolution gives more communities
    for c in first:
        assert c.title and c.summary and c.key_concepts and c.notes
        assert c.members == sorted(c.members, key=lambda n: (-rank[n], n))  # most central first
        assert c.key_concepts[0] == g.nodes[c.members[0]]["name"]


def test_the_graph_is_a_networkx_graph_that_algorithms_accept(full_graph):
    g, _, _ = full_graph
    from graphrag.build import concept_graph

    cg = concept_graph(g)
    assert isinstance(cg, nx.Graph) and not any(d["kind"] == "chunk" for _, d in cg.nodes(data=True))
    assert nx.is_connected(cg.subgraph(max(nx.connected_components(cg), key=len)))
