"""`mathrag eval` and `mathrag bench`: real runs, figures that mean what they say, reports on disk."""

import json
import os
import sys
from pathlib import Path

import pytest
from mathrag_cli import run_mathrag

from rag.evaluation import DATASET, Question, evaluate_answers, evaluate_retrieval, load_questions, term_found
from rag.options import AskOptions

MATHRAG = str(Path(sys.executable).with_name("mathrag"))


def run(*args):
    return run_mathrag(*args)


def test_the_development_set_is_well_formed():
    questions = load_questions()
    answerable = [q for q in questions if q.answerable]
    assert len(answerable) >= 80 and len(questions) - len(answerable) >= 10
    assert sum(q.kind == "paraphrase" for q in questions) >= 20
    root = DATASET.parents[2]
    for q in answerable:
        text = (root / q.notes[0]).read_text(encoding="utf-8")
        assert all((root / n).is_file() for n in q.notes), q.id
        for term in q.key_terms:  # every key term can be found in the answering note
            assert term_found(term, text), f"{q.id}: key term {term!r} is not in {q.notes[0]}"


def test_metrics_on_known_cases(small_retriever):
    questions = [
        Question("a", "What is the derivative of tanh?", ["corpus/neural_networks/activation_functions.md"],
                 ["quotient rule"], "formula"),
        Question("b", "What is the derivative of tanh?", ["corpus/linear_algebra/svd.md"], ["singular"], "formula"),
        Question("c", "How do I bake sourdough bread at home?", [], [], "out_of_scope"),
    ]
    r = evaluate_retrieval(small_retriever, questions, modes=("hybrid",), progress=False)["hybrid"]
    # One question finds its note first, the other (deliberately wrong gold note) never does.
    assert r["recall@1"] == 0.5 and r["recall@10"] == 0.5 and r["mrr"] == 0.5
    assert [m["id"] for m in r["misses@5"]] == ["b"]
    a = evaluate_answers(small_retriever, questions, AskOptions(k=3), generator="extractive", progress=False)
    assert (a["generator"], a["mode"], a["k"]) == ("extractive", "hybrid", 3)
    assert a["examples"] and all(len(e["citations"]) <= 3 for e in a["examples"])
    assert a["refusal_accuracy"] == 1.0 and a["false_refusal_rate"] == 0.0
    assert a["gold_note_cited"] == 0.5 and 0 < a["citation_precision"] <= 1


def test_eval_checks_its_answer_options_first():
    result = run("eval", "--k", "0")
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].endswith("k must be from 1 to 100, not 0")


def test_eval_command_writes_its_reports():
    result = run("eval", "--limit", "12", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)
    hybrid = summary["retrieval"]["hybrid"]
    assert hybrid["recall@5"] >= 0.9, hybrid  # the target, on the real corpus and question set
    modes = {"dense", "bm25", "hybrid", "hybrid+spread", "graph-local", "graph-global", "graph-hybrid"}
    assert set(summary["retrieval"]) == modes and set(summary["retrieval_multihop"]) == modes
    assert summary["multihop_questions"] >= 30
    for r in summary["retrieval_multihop"].values():
        assert 0 < r["coverage@5"] <= r["coverage@10"] <= 1 and r["recall@5"] >= r["coverage@5"]
    answers = summary["answers"][0]
    assert answers["generator"] == "composed" and answers["questions"] == 12
    for key in ("gold_recall", "supported_sentence_rate", "direct_opening_rate", "replaced_rate"):
        assert 0 <= answers[key] <= 1, key
    assert summary["classifier"]["questions"] >= 150 and summary["classifier"]["accuracy"] > 0.5
    for name in ("eval.json", "eval.md", "eval_retrieval.png"):
        path = Path(os.environ["MATHRAG_HOME"]) / "reports" / name
        assert path.is_file() and path.stat().st_size > 200
    report = (Path(os.environ["MATHRAG_HOME"]) / "reports" / "eval.md").read_text()
    assert "## Multi-hop retrieval" in report and "| gold recall |" in report and "answers in full" in report
    assert (Path(os.environ["MATHRAG_HOME"]) / "reports/eval_retrieval.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_bench_rag_quick():
    result = run("bench", "--suite", "rag", "--quick", "--generator", "extractive", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    rag = json.loads(result.stdout)["suites"]["rag"]
    assert rag["incremental"]["only_that_note"] and rag["incremental"]["chunks_embedded"] >= 1
    assert rag["build"]["ratio_vs_raw_encode"] > 0 and rag["search"]["modes"]["hybrid"]["p50_ms"] > 0
    assert rag["quality"]["hybrid_recall@5"] >= 0.9
    reports = Path(os.environ["MATHRAG_HOME"]) / "reports"
    md = (reports / "bench.md").read_text()
    assert "| search p50, hybrid |" in md and "embed query" in md
    stored = json.loads((reports / "suites" / "rag.json").read_text())
    assert stored["quick"] and stored["result"]["quality"] == rag["quality"]
    ratio = rag["search"]["modes"]["hybrid"]["p50_ratio_vs_embed_floor"]
    assert f"| rag | search p50, hybrid, vs embedding the query alone | {ratio:.2f}x" in (
        reports / "headline.md").read_text()
    # every ratio in one table and one bar chart; the latencies are stored so later runs can redraw them
    assert f"| rag | search p50, hybrid, vs embedding the query | {ratio:.2f}x" in md and "## Every ratio" in md
    assert len(stored["latencies"]["hybrid"]) == rag["search"]["queries"]
    for plot in ("bench_ratios.png", "bench_latency.png"):
        assert (reports / plot).read_bytes()[:4] == b"\x89PNG"


def test_the_ratio_chart_marks_targets_met_and_missed(tmp_path):
    from bench.framework import Ratio
    from bench.report import plot_ratios

    rows = [("rag", Ratio("fast", 3.0, 1.5)), ("rag", Ratio("slow latency", 2.0, 1.5, higher_is_better=False)),
            ("graph", Ratio("no target", 0.5))]
    assert [r.meets for _, r in rows] == [True, False, None]
    plot_ratios(rows, tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


def test_the_readme_headline_block_is_replaced_from_the_stored_runs(tmp_path):
    from bench.readme import README_END, README_START, headline_table, update_readme

    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{README_START}\nold table\n{README_END}\nafter\n")
    reports = tmp_path / "reports"
    assert "No benchmark has been run yet" in headline_table(reports)
    (reports / "suites").mkdir(parents=True)
    rag_run = Path(os.environ["MATHRAG_HOME"]) / "reports" / "suites" / "rag.json"
    if not rag_run.is_file():
        pytest.skip("needs the stored run of test_bench_rag_quick")
    (reports / "suites" / "rag.json").write_text(rag_run.read_text())
    (reports / "bench_ratios.png").write_bytes((rag_run.parent.parent / "bench_ratios.png").read_bytes())
    written = update_readme(readme, headline_table(reports), reports)
    assert written == [readme, tmp_path / "docs" / "bench_ratios.png"]  # bench_scale.png was not in the report
    assert written[1].read_bytes() == (reports / "bench_ratios.png").read_bytes()
    text = readme.read_text()
    assert text.startswith("# x\n\nbefore\n") and text.endswith(f"{README_END}\nafter\n") and "old table" not in text
    assert "| rag | hybrid recall@5 (development questions) |" in text and "(--quick)" in text
    with pytest.raises(ValueError, match="has no <!-- bench:headline:start -->"):
        update_readme(tmp_path / "reports" / "suites" / "rag.json", "x")


@pytest.mark.slow
def test_bench_scratch_quick():
    """The from-scratch suite compares against the libraries in one run, and the outputs are identical."""
    result = run("bench", "--suite", "scratch", "--quick", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    scratch = json.loads(result.stdout)["suites"]["scratch"]
    assert scratch["encode"]["identical_ids"] and scratch["encode"]["ratio"] > 0
    assert scratch["train"]["identical_merges"] and scratch["train"]["ratio"] > 1
    assert scratch["generate"]["identical_greedy_tokens"] and scratch["generate"]["ratio"] > 0
    mini = scratch["mini_gpt"]  # a checkpoint exists when the training tests ran first in this session
    assert ("val_bpb" in mini and 0 < mini["val_bpb"] < 8 and mini["gzip_bpb"] > 0) or "mathrag scratch train" in \
        mini["note"]
    md = (Path(os.environ["MATHRAG_HOME"]) / "reports/bench.md").read_text()
    assert "| encode the corpus |" in md and "| train BPE to 512 |" in md
    if "val_bpb" in mini and (Path(os.environ["MATHRAG_HOME"]) / "scratch/mini-gpt/loss_curve.png").is_file():
        assert "![mini-GPT loss curve](bench_scratch_loss.png)" in md
        assert (Path(os.environ["MATHRAG_HOME"]) / "reports/bench_scratch_loss.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_bench_stored_rewrites_the_report_without_running_anything():
    reports = Path(os.environ["MATHRAG_HOME"]) / "reports"
    if not (reports / "suites" / "rag.json").is_file():
        pytest.skip("needs the stored run of test_bench_rag_quick")
    (reports / "bench.md").unlink()
    result = run("bench", "--stored", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["suites"] == {}  # nothing ran
    md = (reports / "bench.md").read_text()
    assert "Written from the stored runs" in md and "| search p50, hybrid |" in md and "(--quick, " in md
    refused = run("bench", "--stored", "--suite", "rag")
    assert refused.returncode == 2 and "--stored runs nothing" in refused.stderr


def test_bench_rejects_an_unknown_suite():
    result = run("bench", "--suite", "nope")
    said = result.stderr.removeprefix("mathrag: error: ").strip()
    assert result.returncode == 2 and said.startswith("unknown suite 'nope'; choose one of ")
    assert set(said.split("choose one of ")[1].split(", ")) == {"rag", "scratch", "scale", "graph", "vault",
                                                                 "reliability", "finetune"}
