"""The retrieval commands of ``mathrag``, run as a user runs them, over the whole corpus."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from mathrag_cli import run_mathrag

MATHRAG = str(Path(sys.executable).with_name("mathrag"))
TANH = "corpus/neural_networks/activation_functions.md"


def run(*args):
    return run_mathrag(*args)


@pytest.fixture(scope="module", autouse=True)
def built(full_retriever):
    """The session's full-corpus index (built once by the fixture, then reused by the commands)."""
    return full_retriever


def test_index_is_up_to_date_and_reports_json():
    result = run("index", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["embedded_chunks"] == 0 and report["rebuilt"] is False and report["chunks"] > 500
    assert report["kind"] == "flat"


def test_search_json():
    result = run("search", "derivative of tanh", "--k", "3", "--json")
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)
    assert len(hits) == 3 and hits[0]["source"] == TANH
    assert {"text", "source", "heading", "title", "score", "chunk_id"} <= set(hits[0])


def test_search_text_output():
    result = run("search", "eigenvalues of a symmetric matrix", "--mode", "dense", "--k", "2")
    assert result.returncode == 0
    assert result.stdout.startswith("[1] ") and "corpus/linear_algebra/" in result.stdout


def test_ask_json_extractive():
    result = run("ask", "What is the derivative of tanh?", "--generator", "extractive", "--json")
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)
    assert reply["done"] and reply["covered"] and reply["citations"][0]["source"] == TANH
    assert len(reply["hits"]) == 5


@pytest.mark.parametrize(
    "args,message",
    [
        (("ask", "   "), "mathrag: error: the question is empty"),
        (("ask", "tanh?", "--generator", "gpt-9"), "mathrag: error: unknown generator 'gpt-9'"),
        (("search", "tanh", "--k", "0"), "mathrag: error: k must be from 1 to 100, not 0"),
        (("ask", "tanh?", "--temperature", "9"), "mathrag: error: temperature must be from 0 to 2"),
    ],
)
def test_bad_input_is_one_line(args, message):
    result = run(*args)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(message)
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_ask_streams_a_cited_answer_with_the_embedded_model():
    """The issue's acceptance check: the default generator answers and cites the activation-functions note."""
    with tempfile.TemporaryFile("w+") as errors:
        proc = subprocess.Popen([MATHRAG, "ask", "What is the derivative of tanh?"], stdout=subprocess.PIPE,
                                stderr=errors, text=True, env=os.environ.copy(), stdin=subprocess.DEVNULL)
        first = proc.stdout.readline()  # arrives before the process ends: the answer streams
        assert proc.poll() is None or first
        # Read the rest through the same buffered reader: communicate() reads the raw pipe and would miss
        # whatever readline() already pulled into the buffer.
        out = first + proc.stdout.read()
        proc.wait(timeout=600)
        errors.seek(0)
        assert proc.returncode == 0, errors.read()[-2000:]
    assert "Sources:" in out and TANH in out.split("Sources:")[1]


@pytest.mark.slow
def test_ask_with_the_projects_own_model():
    """`mathrag ask --generator scratch` answers through from_scratch's tokenizer and GPT."""
    result = run("ask", "What is the derivative of tanh?", "--generator", "scratch", "--max-new-tokens", "48",
                 "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    reply = json.loads(result.stdout)
    assert reply["generator"] == "scratch" and reply["done"] and reply["citations"]
    assert reply["citations"][0]["source"] == TANH
