"""Attention heatmaps (app/attention_maps.py, `mathrag scratch attention`): the weights drawn are the model's
causal attention rows, one PNG per head is written with a manifest, and bad input is a one-line error."""

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from mathrag_cli import run_mathrag
from PIL import Image

from app import attention_maps as am
from from_scratch.train import train
from from_scratch.train_config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
MATHRAG = str(Path(sys.executable).with_name("mathrag"))
TEXT = "The SVD writes a matrix as U Sigma V transpose."


def run(*args, timeout=None):
    return run_mathrag(*args)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny mini GPT (3 layers of 2 heads) trained for a few steps on four real notes."""
    notes = sorted((ROOT / "corpus").rglob("*.md"))[::15][:4]
    docs = [(p.name, p.read_text(encoding="utf-8")) for p in notes]
    config = TrainConfig(vocab_size=300, context_length=48, d_model=16, n_layers=3, n_heads=2, batch_size=4, steps=5,
                         warmup_steps=1, eval_interval=5, eval_batches=1, val_fraction=0.25)
    out = tmp_path_factory.mktemp("attn") / "mini"
    train(docs, config, out, progress=False)
    return out


def check_rows(weights: np.ndarray):
    """Each row is a probability distribution over the tokens up to it, nothing after it."""
    H, T, T2 = weights.shape
    assert T == T2
    np.testing.assert_allclose(weights.sum(-1), np.ones((H, T)), atol=1e-5)
    assert np.all(weights >= 0)
    assert np.all(np.triu(weights, k=1) == 0), "a token attended to a later token"
    np.testing.assert_allclose(weights[:, 0, 0], 1.0, atol=1e-6)  # the first token can only look at itself


def test_smollm2_maps_are_causal_distributions_over_the_texts_tokens():
    from rag.generators import get_generator

    maps = am.compute(TEXT, layer=-1)
    tokenizer = get_generator("scratch").tokenizer
    ids = tokenizer.encode(TEXT)
    assert maps.layer == 29 and maps.n_layers == 30 and maps.n_heads == 9
    assert len(maps.tokens) == len(ids) and maps.weights.shape == (9, len(ids), len(ids))
    assert "".join(maps.tokens).replace("·", " ") == TEXT  # the labels spell the text, token by token
    check_rows(maps.weights)
    links = maps.top_links(head=4, n=3)
    assert len(links) == 3 and all(key != maps.tokens[0] for _, key, _ in links)  # the first token is skipped
    position = {token: i for i, token in enumerate(maps.tokens)}  # these tokens are unique in TEXT
    lifts = [w * (position[q] + 1) for q, _, w in links]
    assert lifts == sorted(lifts, reverse=True)
    assert am.model_shape(am.SMOLLM2) == (30, 9)


def test_the_shown_weights_are_the_models_softmax_of_q_dot_k(checkpoint):
    """Recompute layer 0 of the mini GPT by hand: softmax(q k^T / sqrt(d) + causal mask) per head."""
    import torch

    maps = am.compute("gradient descent", layer=0, source=str(checkpoint))
    model, tokenizer, prefix = am.load_model(str(checkpoint))
    assert maps.tokens[0] == "<|endoftext|>" and len(prefix) == 1  # documents start with it in training
    ids = torch.tensor([prefix + tokenizer.encode("gradient descent")])
    block = model.blocks[0]
    with torch.no_grad():
        x = block.norm1(model._embed(ids, 0)[0])  # (1, T, d)
        q, k, _ = block.attn.qkv(x)[0].chunk(3, dim=-1)  # [W^Q | W^K | W^V]: (T, d_model) each
    H, T = maps.n_heads, ids.shape[1]
    d = q.shape[-1] // H
    q, k = q.view(T, H, d).transpose(0, 1), k.view(T, H, d).transpose(0, 1)  # (H, T, d)
    scores = q @ k.transpose(1, 2) / d**0.5 + torch.full((T, T), float("-inf")).triu(1)
    np.testing.assert_allclose(maps.weights, scores.softmax(-1).numpy(), atol=1e-5)
    check_rows(maps.weights)


def test_cli_saves_a_png_per_head_and_a_manifest(checkpoint, tmp_path):
    out = tmp_path / "maps"
    result = run("scratch", "attention", "the chain rule", "--layer", "-1", "--checkpoint", str(checkpoint),
                 "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "layer 2 of 0..2, 2 heads" in result.stdout and "head 1: strongest links" in result.stdout
    manifest = json.loads((out / "attention.json").read_text())
    assert manifest["files"] == ["layer2_head0.png", "layer2_head1.png", "layer2_all_heads.png"]
    assert manifest["text"] == "the chain rule" and manifest["layer"] == 2 and manifest["tokens"][0] == "<|endoftext|>"
    for name in manifest["files"]:
        with Image.open(out / name) as png:
            assert png.format == "PNG" and min(png.size) > 200
    assert not list(out.glob(".*tmp")), "a temporary file was left behind"


def test_cli_one_head_into_the_default_folder(checkpoint):
    result = run("scratch", "attention", "entropy", "--head", "1", "--checkpoint", str(checkpoint))
    assert result.returncode == 0, result.stderr
    folder = Path(os.environ["MATHRAG_HOME"]) / "scratch" / "attention" / "mini-entropy"
    assert sorted(p.name for p in folder.glob("*.png")) == ["layer0_all_heads.png", "layer0_head1.png"]


@pytest.mark.parametrize(
    "args,message",
    [
        (["   "], "the text is empty"),
        (["x", "--layer", "3"], "layer 3 does not exist; this model has layers 0 to 2"),
        (["x", "--head", "2"], "head 2 does not exist; layer 0 has heads 0 to 1"),
        (["word " * 60], "tokens long; a heatmap shows at most 48"),  # the tiny model's context is 48
    ],
)
def test_bad_input_is_a_one_line_error(checkpoint, args, message):
    result = run("scratch", "attention", *args, "--checkpoint", str(checkpoint))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert message in result.stderr and result.stderr.count("\n") == 1


def test_a_missing_or_broken_checkpoint_names_the_folder(checkpoint, tmp_path):
    result = run("scratch", "attention", "x", "--checkpoint", str(tmp_path / "nothing"))
    assert result.returncode == 2 and "no checkpoint folder at" in result.stderr
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "tokenizer.txt"):
        (broken / name).write_bytes((checkpoint / name).read_bytes())
    (broken / "model.safetensors").write_bytes((checkpoint / "model.safetensors").read_bytes()[:100])
    result = run("scratch", "attention", "x", "--checkpoint", str(broken))
    assert result.returncode == 2 and "model.safetensors" in result.stderr and "Traceback" not in result.stderr
