"""`mathrag bench --suite graph`: the replicated corpus is a faithful copy, and the suite reports its ratios."""

import json

from bench.graph_suite import replicate
from bench.run import run_bench


def test_replicas_link_inside_their_own_copy(full_graph):
    _, notes, _ = full_graph
    copies = replicate(notes, 3)
    assert len(copies) == 3 * len(notes) and len({n.slug for n in copies}) == 3 * len(notes)
    slugs = {n.slug for n in copies}
    for note in copies:
        suffix = note.slug[note.slug.rindex("-r"):]
        assert all(p.endswith(suffix) and p in slugs for p in note.prerequisites), note.slug
    with_links = [n for n in copies if n.slug.endswith("-r2") and ".md" in n.body]
    assert with_links and all("-r2.md" in n.body for n in with_links)


def test_graph_suite_reports_ratios_and_growth(small_settings):
    summary = run_bench(small_settings, suites=["graph"], quick=True)
    graph = summary["suites"]["graph"]
    assert graph["build"]["graph_s"] > 0 and graph["build"]["ratio"] > 0 and graph["build"]["nodes"] > 9
    modes = graph["search"]["modes"]
    assert set(modes) == {"dense", "graph-local", "graph-global", "graph-hybrid"}
    assert modes["dense"]["ratio_vs_dense"] == 1 and all(m["p50_ms"] > 0 for m in modes.values())
    runs = graph["growth"]["runs"]
    assert [r["copies"] for r in runs] == [1, 4] and runs[1]["nodes"] > 3 * runs[0]["nodes"]
    assert runs[1]["chunks"] == 4 * runs[0]["chunks"]
    assert all(r[k] > 0 for r in runs for k in ("chunk_s", "bm25_s", "faiss_add_s", "graph_s", "ms_per_chunk"))
    assert 0 < graph["growth"]["exponent"] < 3 and 0 < graph["growth"]["ingest_exponent"] < 3
    reports = small_settings.reports_dir
    assert json.loads((reports / "bench.json").read_text())["suites"]["graph"]["growth"] == graph["growth"]
    assert "| search p50, graph-local |" in (reports / "bench.md").read_text()
    assert (reports / "bench_graph_growth.png").read_bytes()[:4] == b"\x89PNG"
    assert str(reports / "bench_graph_growth.png") in summary["files"]


def test_the_report_says_why_growth_is_off_linear():
    from bench.graph_suite import _growth_why

    run = {"chunks": 100, "nodes": 50, "bm25_terms": 400, "communities": 5}
    big = {"chunks": 6400, "nodes": 2000, "bm25_terms": 410, "communities": 6}
    below = "\n".join(_growth_why({"ingest_exponent": 0.85, "runs": [run, big]}))
    assert "below linear (0.85)" in below and "x64 the chunks gave x40 the graph's nodes" in below
    assert "above linear (1.30)" in "\n".join(_growth_why({"ingest_exponent": 1.3, "runs": [run, big]}))
    assert _growth_why({"ingest_exponent": 1.0, "runs": [run, big]}) == []
