"""The ``mathrag`` console script, run as a user would run it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import rag
from rag.corpus import note_paths

MATHRAG = str(Path(sys.executable).with_name("mathrag"))


def run(*args):
    return subprocess.run([MATHRAG, *args], capture_output=True, text=True, env=os.environ.copy(), timeout=120)


def test_help_lists_the_commands():
    result = run("--help")
    assert result.returncode == 0
    assert "usage: mathrag" in result.stdout
    for command in ("notes", "info"):
        assert command in result.stdout


def test_version():
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"mathrag {rag.__version__}"


def test_every_subcommand_has_help():
    for command in ("notes", "info"):
        result = run(command, "--help")
        assert result.returncode == 0 and f"usage: mathrag {command}" in result.stdout


def test_notes_json_lists_the_corpus():
    result = run("notes", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert len(data["notes"]) == len(note_paths()) and data["errors"] == []
    svd = next(n for n in data["notes"] if n["slug"] == "svd")
    assert svd["source"] == "corpus/linear_algebra/svd.md"


def test_notes_check_one_note():
    result = run("notes", "--check", "corpus/calculus/gradient.md")
    assert result.returncode == 0, result.stdout
    assert result.stdout.startswith("ok")


def test_a_missing_note_is_one_clear_line():
    result = run("notes", "--check", "corpus/nowhere.md")
    assert result.returncode == 2
    assert result.stderr.strip() == "mathrag: error: no such note: corpus/nowhere.md"
    assert "Traceback" not in result.stderr


def test_info_finds_the_embedded_models():
    result = run("info", "--json")
    assert result.returncode == 0
    info = json.loads(result.stdout)
    assert info["home"] == os.environ["MATHRAG_HOME"]
    assert info["embedding_model"].endswith("model")
    assert info["generator_gguf"].endswith(".gguf")
