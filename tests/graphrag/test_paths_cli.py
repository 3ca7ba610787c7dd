"""Learning paths, neighbours and the `mathrag graph` / graph-mode commands on the real corpus."""

import json
import sys
from pathlib import Path

import pytest
from mathrag_cli import run_mathrag

from graphrag.build import prerequisite_graph
from graphrag.paths import UnknownConcept, learning_path, neighbors, resolve

MATHRAG = str(Path(sys.executable).with_name("mathrag"))


def run(*args, timeout=None):
    return run_mathrag(*args)


def test_a_learning_path_puts_every_prerequisite_before_what_needs_it(full_graph):
    g, _, _ = full_graph
    path = learning_path(g, "attention")
    order = [s.concept for s in path.steps]
    assert order[-1] == "note:scaled_dot_product_attention" == path.note
    pre = prerequisite_graph(g)
    for u, v in pre.subgraph(order).edges():
        assert order.index(u) < order.index(v), f"{u} must come before {v}"
    assert "note:softmax_logsumexp" in order and "note:vectors_dot_product" in order
    assert order == [s.concept for s in learning_path(g, "Scaled Dot-Product Attention").steps]


def test_a_term_leads_to_the_note_that_defines_it(full_graph):
    g, _, _ = full_graph
    path = learning_path(g, "left singular vectors")
    assert path.target == "term:left-singular-vectors" and path.note == "note:svd"


def test_unknown_concepts_suggest_the_closest_names(full_graph):
    g, _, _ = full_graph
    with pytest.raises(UnknownConcept, match="no concept named 'eigenvektor'; closest: .*Eigenvalues"):
        resolve(g, "eigenvektor")
    assert resolve(g, "svd") == resolve(g, "SVD") == "note:svd"


def test_neighbours_are_grouped_by_relation(full_graph):
    g, _, _ = full_graph
    concept, groups = neighbors(g, "SVD")
    assert concept == "note:svd"
    assert ("->", "Principal Component Analysis (PCA)", 1.0) in groups["links_to"]
    assert ("<-", "Eigenvalues and Eigenvectors", 1.0) in groups["prerequisite_of"]
    assert groups["mentioned in"][0][1].startswith("corpus/")


@pytest.mark.slow
def test_graph_commands_on_the_corpus():
    result = run("graph", "build", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    built = json.loads(result.stdout)
    assert built["nodes"]["note"] == len(list(Path("corpus").rglob("*.md"))) and built["cycles"] == []
    stats = json.loads(run("graph", "stats", "--json").stdout)
    assert stats["prerequisite_dag"] and stats["every_edge_has_provenance"] and stats["largest_component"] > 100
    path = run("graph", "path", "LoRA")
    assert path.returncode == 0 and "Learning path to LoRA" in path.stdout
    assert path.stdout.index("Singular Value Decomposition") < path.stdout.index("LoRA: Low-Rank Adaptation  [")
    bad = run("graph", "path", "attenshun")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "closest: Scaled Dot-Product Attention" in bad.stderr
    search = run("search", "What do I need before LoRA?", "--mode", "graph-local", "--json")
    hits = json.loads(search.stdout)
    assert hits and all(h["subgraph"]["nodes"] for h in hits)
    none = run("search", "zxqv wombat plugh", "--mode", "graph-local")
    assert none.returncode == 0 and "no concept of the graph matches" in none.stdout
    index = run("index")
    assert index.returncode == 0 and "graph up to date" in index.stdout
