"""`mathrag finetune ...` run as a user runs it, on the small fine-tuning corpus: the data command, clear
one-line errors, the adapter listed and selectable (`mathrag ask --generator smollm2+lora:<name>`, the app's
generator list), and the before/after report."""

import json
import math
import os
import sys
from pathlib import Path

import pytest
from mathrag_cli import run_mathrag

MATHRAG = str(Path(sys.executable).with_name("mathrag"))

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(ft_settings):
    env = {**os.environ, "MATHRAG_HOME": str(ft_settings.home), "MATHRAG_CORPUS": str(ft_settings.corpus_dir)}
    env.pop("MATHRAG_EMBEDDER", None)

    def mathrag(*args, timeout=None):
        return run_mathrag(*args, env=env)

    return mathrag


def one_line_error(result) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.startswith("mathrag: error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_help_names_every_action(run):
    result = run("finetune", "--help")
    assert result.returncode == 0
    for action in ("data", "lora", "embed", "eval", "merge", "list"):
        assert action in result.stdout
    lora = run("finetune", "lora", "--help")
    assert "--preset" in lora.stdout and "cpu-quick" in lora.stdout and "--resume" in lora.stdout


def test_data_command_writes_the_same_files_as_the_library(run, ft_data, tmp_path):
    result = run("finetune", "data", "--json", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    manifest = json.loads(result.stdout)
    assert manifest["files"] == ft_data["files"]  # same notes, same seed: the same bytes
    assert {p.name for p in tmp_path.iterdir()} == {"train.jsonl", "validation.jsonl", "manifest.json"}
    from mathrag.commands.finetune import data_summary  # what the command prints without --json

    text = data_summary(manifest, tmp_path, 0)
    assert f"wrote {tmp_path}/train.jsonl" in text and "  validation: " in text and "examples from" in text


def test_bad_input_gets_one_line_errors(run, tiny_card, tmp_path):
    assert "an adapter named 'tiny' exists" in one_line_error(run("finetune", "lora", "--name", "tiny"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{broken\n")
    line = one_line_error(run("finetune", "lora", "--name", "fresh", "--train-file", str(bad)))
    assert f"{bad}:1: not an example" in line
    assert "no adapter 'nope'" in one_line_error(run("finetune", "merge", "nope"))
    assert "name an --adapter" in one_line_error(run("finetune", "eval"))
    assert "unknown generator" in one_line_error(run("ask", "What is SVD?", "--generator", "smollm2+lor:tiny"))
    assert "no LoRA adapter 'nope'" in one_line_error(run("ask", "What is SVD?", "--generator", "smollm2+lora:nope"))
    wrong = run("finetune", "lora", "--preset", "huge")
    assert wrong.returncode == 2 and "invalid choice: 'huge'" in wrong.stderr


def test_the_adapter_is_listed_and_answers_in_ask_and_the_app(run, ft_settings, tiny_card):
    from app.engine import available_generators

    listed = run("finetune", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [c["name"] for c in json.loads(listed.stdout) if c["name"] == "tiny"] == ["tiny"]
    result = run("ask", "What is the singular value decomposition?", "--generator", "smollm2+lora:tiny", "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["text"].strip() and answer["citations"]
    assert answer["citations"][0]["source"].startswith("corpus/linear_algebra/")
    offered = available_generators(ft_settings)
    assert "smollm2+lora:tiny" in offered and offered[:2] == ["composed", "smollm2"] and offered[-1] == "extractive"


def test_eval_reports_before_and_after(run, ft_settings, tiny_card):
    result = run("finetune", "eval", "--adapter", "tiny", "--limit", "3", "--max-new-tokens", "24", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    g = summary["generator"]
    assert g["adapter"] == "tiny" and g["examples"] == 3
    assert g["before"]["generator"] == "smollm2" and g["after"]["generator"] == "smollm2+lora:tiny"
    for side in (g["before"], g["after"]):
        for metric in ("key_term_coverage", "answer_recall", "cites_gold", "citations_valid", "passes_guard"):
            assert 0.0 <= side[metric] <= 1.0 or math.isnan(side[metric])
        assert 1.0 < side["reference_perplexity"] < 1e4
    # Two training steps on the answers' tokens move their likelihood: the adapter is really in use.
    assert g["after"]["reference_perplexity"] != pytest.approx(g["before"]["reference_perplexity"], rel=1e-4)
    assert g["training"]["steps"] == 2
    reports = ft_settings.home / "reports"
    for name in ("finetune_eval.json", "finetune_eval.md", "finetune_eval.png"):
        assert (reports / name).stat().st_size > 100
    md = (reports / "finetune_eval.md").read_text()
    assert "| reference perplexity |" in md and "smollm2+lora:tiny" in md
