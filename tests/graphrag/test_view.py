"""The pictures of the graph behind an answer: which concepts, which edges, what hovering shows."""

from types import SimpleNamespace

from graphrag import view


def hit(source, nodes=()):
    return SimpleNamespace(source=source, subgraph={"nodes": list(nodes), "edges": []})


def test_an_answer_from_one_note_is_drawn_with_its_neighbourhood(full_graph):
    g, _, _ = full_graph
    sub = view.answer_subgraph(g, [hit("corpus/neural_networks/activation_functions.md")] * 3)
    assert sub.number_of_nodes() == view.MIN_NODES
    assert [n for n, d in sub.nodes(data=True) if d["behind"]] == ["note:activation_functions"]
    # its prerequisite comes first among the neighbours, and every drawn edge is one of the graph's
    assert "note:derivatives_partial_derivatives" in sub
    assert all(g.has_edge(u, v, key=k) for u, v, k in sub.edges(keys=True))
    assert {k for _, _, k in sub.edges(keys=True)} <= set(view.SHOWN_EDGES)
    assert "nearby" in view.describe(sub)


def test_many_notes_behind_an_answer_are_drawn_without_neighbours(full_graph):
    g, notes, _ = full_graph
    hits = [hit(n.source) for n in notes[: view.MIN_NODES + 2]]
    sub = view.answer_subgraph(g, hits)
    assert sub.number_of_nodes() == view.MIN_NODES + 2 and all(d["behind"] for _, d in sub.nodes(data=True))


def test_the_interactive_figure_shows_summaries_on_hover_and_escapes_them(full_graph):
    g, _, _ = full_graph
    sub = view.answer_subgraph(g, [hit("corpus/transformers_genai/lora.md")])
    fig = view.interactive(sub, "behind")
    nodes = [t for t in fig.data if t.mode == "markers+text"]
    assert sum(len(t.x) for t in nodes) == sub.number_of_nodes()
    hover = " ".join(h for t in nodes for h in t.hovertext)
    assert "<b>LoRA" in hover and g.nodes["note:lora"]["description"][:30].replace("<", "&lt;") in hover
    edge_types = {t.name for t in fig.data if t.mode == "lines"}
    assert "prerequisite of" in edge_types
    g2 = sub.copy()
    g2.nodes["note:lora"]["description"] = "<script>alert(1)</script>"
    assert "<script>" not in " ".join(h for t in view.interactive(g2).data if t.hovertext for h in t.hovertext)
    assert view.interactive(type(sub)()).layout.annotations[0].text.startswith("No graph")
