"""The graph steers practice: weak prerequisites first, with the learner's own numbers, and a mastery map."""

import pytest

from graphrag.study import mastery_figure, prerequisite_digraph, state, study_next
from rag.corpus import load_corpus


@pytest.fixture(scope="module")
def graph():
    notes = load_corpus()
    return prerequisite_digraph(notes), {n.slug: n.source for n in notes}


def test_states_follow_recent_grades():
    assert state(None) == "new" and state([False]) == "started"
    assert state([False, False, True, False]) == "weak" and state([True, True, True, False]) == "solid"


def test_a_weak_prerequisite_comes_first_and_says_why(graph):
    g, src = graph
    grades = {src["chain_rule"]: [False, False, True, False], src["backpropagation"]: [True, False, False]}
    first, *rest = study_next(g, grades)
    assert first.source == src["chain_rule"]
    assert first.reason == ("The Chain Rule: you missed 3 of 4 on it; Backpropagation depends on it "
                            "(you missed 2 of 3 there).")
    assert rest and rest[0].source in set(g.predecessors(src["chain_rule"]))  # then the chain rule's own footing


def test_a_weak_note_with_solid_prerequisites_is_itself_next(graph):
    g, src = graph
    chain = src["chain_rule"]
    grades = {p: [True, True] for p in g.predecessors(chain)} | {chain: [False, False, True]}
    (only,) = study_next(g, grades)
    assert only.source == chain and only.reason.startswith("The Chain Rule: you missed 2 of 3 on it")
    assert study_next(g, {chain: [True, True, True]}) == []  # nothing weak: nothing to steer


def test_mastery_map_colours_notes_by_state(graph):
    g, src = graph
    fig = mastery_figure(g, {src["chain_rule"]: [False, False], src["svd"]: [True, True]})
    nodes = fig.axes[0].collections[1]
    colours = {tuple(round(c, 3) for c in rgba[:3]) for rgba in nodes.get_facecolors()}
    assert len(colours) == 3  # new, weak and solid are told apart
