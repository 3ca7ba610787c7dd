"""Your own notes: an Obsidian-style folder with no front matter, [[wikilinks]] (a cycle, a missing target),
a note with no heading, one with only front matter, attachments and a hidden folder; read, linked, indexed,
searched and answered from."""

import json
import os
import warnings

import networkx as nx
import pytest
from mathrag_cli import run_mathrag

from rag.corpus import load_corpus, validate_note

CHAIN = """# The chain rule

The chain rule differentiates a composition of functions: $(f \\circ g)'(x) = f'(g(x))\\, g'(x)$. It is what
[[Backpropagation]] applies at every node of a network, and it multiplies [[derivative|derivatives]] along the way.

$$
\\frac{dz}{dx} = \\frac{dz}{dy}\\,\\frac{dy}{dx}
$$

Compare with [[Nowhere Note]]. ![[plot.png]]

```python
label = "[[not a link]]"
```
"""
BACKPROP = """---
tags: [networks]
---
# Backpropagation

Backpropagation computes the gradient of the loss with respect to every weight of a network by applying the
[[Chain Rule|chain rule]] backwards from the loss, reusing each intermediate result once.
"""
DERIVATIVE = """The derivative of $f$ at $x$ is the limit of $(f(x+h) - f(x))/h$ as $h \\to 0$: the slope of the tangent
line. See [[The chain rule]] for compositions.
"""
ONLY_FRONT = """---
title: An empty idea
aliases: [Emptiness]
---
"""


@pytest.fixture(scope="module")
def vault(tmp_path_factory):
    root = tmp_path_factory.mktemp("v") / "vault"
    files = {"Calculus/Chain Rule.md": CHAIN, "Backpropagation.md": BACKPROP, "Calculus/derivative.md": DERIVATIVE,
             "Drafts/An empty idea.md": ONLY_FRONT, ".obsidian/app.json": "{}", ".trash/old.md": "# Deleted\n",
             "attachments/plot.png": "PNG"}
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def read(vault):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        notes = load_corpus(vault)
    return {n.slug: n for n in notes}, [str(w.message) for w in caught]


def test_notes_without_front_matter_are_read_with_what_it_would_say(vault):
    notes, said = read(vault)
    assert sorted(notes) == ["an_empty_idea", "backpropagation", "chain_rule", "derivative"]  # not .trash/old.md
    chain, derivative, empty = notes["chain_rule"], notes["derivative"], notes["an_empty_idea"]
    assert (chain.title, chain.area, chain.source) == ("The chain rule", "Calculus", "vault/Calculus/Chain Rule.md")
    assert chain.summary.startswith("The chain rule differentiates a composition") and "[[" not in chain.summary
    assert derivative.title == "derivative" and derivative.summary.startswith("The derivative of $f$")  # no heading
    assert (empty.title, empty.aliases, empty.area) == ("An empty idea", ["Emptiness"], "Drafts")
    assert empty.body.strip() == "" and empty.summary == ""
    assert notes["backpropagation"].area == "" and notes["backpropagation"].tags == ["networks"]
    assert any(m.startswith("not read: 3") and ".obsidian/" in m and "attachments/plot.png" in m for m in said), said
    assert any("[[Nowhere Note]] links to no note" in m for m in said), said
    assert validate_note(chain, root=vault.parent)  # the project's own rules still name what such a note lacks


def test_wikilinks_become_links_math_and_code_are_kept(vault):
    notes, _ = read(vault)
    chain = notes["chain_rule"].body
    assert "[Backpropagation](../Backpropagation.md)" in chain and "[derivatives](derivative.md)" in chain
    assert "Compare with Nowhere Note." in chain and "plot.png" not in chain  # missing: text; attachment: dropped
    assert 'label = "[[not a link]]"' in chain and "\\frac{dz}{dx}" in chain
    assert "[chain rule](Calculus/Chain%20Rule.md)" in notes["backpropagation"].body
    assert "[The chain rule](Chain%20Rule.md)" in notes["derivative"].body  # by title, as Obsidian resolves it


def test_the_commands_index_link_search_and_answer_from_the_vault(vault, tmp_path):
    env = {**os.environ, "MATHRAG_HOME": str(tmp_path / "home")}
    built = run_mathrag("--corpus", str(vault), "index", "--json", env=env)
    assert built.returncode == 0, built.stderr[-2000:]
    report = json.loads(built.stdout)
    assert len(report["added"]) == 4 and report["total_chunks"] >= 4
    found = run_mathrag("--corpus", str(vault), "search", "how are gradients of a network computed", "--json",
                        env=env)
    assert json.loads(found.stdout)[0]["source"] == "vault/Backpropagation.md"
    asked = run_mathrag("--corpus", str(vault), "ask", "What is backpropagation?", "--json", env=env)
    reply = json.loads(asked.stdout)
    assert reply["covered"] and reply["citations"][0]["source"] == "vault/Backpropagation.md"
    assert "](" not in reply["text"] and "chain rule" in reply["text"]  # a link reads as its words
    from graphrag.store import graph_dir, load_graph
    from rag.settings import Settings

    g = load_graph(graph_dir(Settings(home=tmp_path / "home", corpus_dir=vault))).graph
    links = {(u, v) for u, v, k in g.edges(keys=True) if k == "links_to"}
    assert {("note:chain_rule", "note:backpropagation"), ("note:backpropagation", "note:chain_rule"),
            ("note:chain_rule", "note:derivative"), ("note:derivative", "note:chain_rule")} <= links
    assert not nx.is_directed_acyclic_graph(nx.DiGraph(list(links)))  # the cycle is kept, nothing breaks on it
    missing = run_mathrag("--corpus", str(tmp_path / "nowhere"), "index", env=env)
    assert missing.returncode == 2 and missing.stderr.strip().endswith("nowhere: no such folder")
