"""Training the mini GPT (from_scratch/train.py): it learns, splits by document, resumes exactly, saves
without pickle, computes bits per byte as defined, samples reproducibly, and the CLI drives it."""

import json
import math
import os
import random
import shutil
import struct
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from mathrag_cli import run_mathrag
from safetensors.torch import load_file

from from_scratch.checkpoint import CheckpointError, load_checkpoint, read_train_config, save_checkpoint
from from_scratch.train import (
    bits_per_byte,
    build_model,
    evaluate_texts,
    lr_at,
    make_optimizer,
    sample,
    split_documents,
    train,
    train_tokenizer,
)
from from_scratch.train_config import EOT, TrainConfig

ROOT = Path(__file__).resolve().parents[2]
MATHRAG = str(Path(sys.executable).with_name("mathrag"))
NOTE_PATHS = sorted((ROOT / "corpus").rglob("*.md"))
# Six real notes from different areas: small enough to train on in seconds.
DOCS = [(p.relative_to(ROOT).as_posix(), p.read_text(encoding="utf-8")) for p in NOTE_PATHS[::10][:6]]
TINY = TrainConfig(vocab_size=320, context_length=32, d_model=32, n_layers=2, n_heads=2, batch_size=8, steps=40,
                   lr=3e-3, min_lr=3e-4, warmup_steps=5, eval_interval=10, eval_batches=2, val_fraction=0.34, seed=7)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run on six real notes, shared by the tests that only read its checkpoint."""
    out = tmp_path_factory.mktemp("tiny") / "run"
    return train(DOCS, TINY, out, progress=False), out


def test_there_are_enough_real_notes():
    assert len(DOCS) == 6 and all(len(text) > 2000 for _, text in DOCS)


# --------------------------------------------------------------------------- learning


def test_validation_loss_decreases(trained):
    summary, out = trained
    metrics = json.loads((out / "metrics.json").read_text())
    evals = metrics["eval"]
    assert [e["step"] for e in evals] == [0, 10, 20, 30, 40]
    assert evals[0]["val_loss"] == pytest.approx(math.log(summary["vocab_size"]), abs=0.1)  # untrained: ~uniform
    assert evals[-1]["val_loss"] < evals[0]["val_loss"] - 0.5
    assert evals[-1]["train_loss"] < evals[0]["train_loss"] - 0.5
    assert summary["finished"] and summary["step"] == 40
    assert 0 < summary["val_bpb"] < 8 and summary["val_loss"] < evals[0]["val_loss"]
    assert summary["val_bpb"] == pytest.approx(bits_per_byte(summary["val_loss"] * summary["val_tokens"],
                                                             summary["val_bytes"]))
    assert len(metrics["train"]) == 40 and metrics["final"]["val_bpb"] == summary["val_bpb"]


def test_learning_rate_warms_up_then_follows_the_cosine():
    c = TrainConfig(steps=110, warmup_steps=10, lr=1e-3, min_lr=1e-4)
    assert lr_at(1, c) == pytest.approx(1e-4) and lr_at(10, c) == pytest.approx(1e-3)
    assert lr_at(60, c) == pytest.approx(1e-4 + 0.5 * 9e-4)  # halfway through the decay: the mean
    assert lr_at(110, c) == pytest.approx(1e-4)
    lrs = [lr_at(t, c) for t in range(10, 111)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))


def test_weight_decay_on_matrices_only():
    model = build_model(TINY, 300)
    decay, no_decay = make_optimizer(model, TINY).param_groups
    assert decay["weight_decay"] == TINY.weight_decay and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() == 1 for p in no_decay["params"])
    assert sum(p.numel() for g in (decay, no_decay) for p in g["params"]) == model.n_params  # each parameter once


# --------------------------------------------------------------------------- data split


def test_split_is_by_document_disjoint_and_deterministic(trained):
    train_docs, val_docs = split_documents(DOCS, 0.34, seed=7)
    train_names, val_names = {n for n, _ in train_docs}, {n for n, _ in val_docs}
    assert len(val_names) == 2 and not train_names & val_names and train_names | val_names == {n for n, _ in DOCS}
    shuffled = DOCS[:]
    random.Random(0).shuffle(shuffled)
    assert split_documents(shuffled, 0.34, seed=7) == (train_docs, val_docs)  # the order given does not matter
    assert len({tuple(n for n, _ in split_documents(DOCS, 0.34, seed=s)[1]) for s in range(8)}) > 1  # seed matters
    # The run held out exactly these documents and never saw them: not in training, not in the tokenizer.
    _, out = trained
    data = json.loads((out / "config.json").read_text())["data"]
    assert data["val_documents"] == sorted(val_names) and data["train_documents"] == sorted(train_names)
    assert train_tokenizer([t for _, t in train_docs], TINY.vocab_size).merges == \
        load_checkpoint(out)[1].merges


def test_split_needs_unique_names_and_two_documents():
    with pytest.raises(ValueError, match="unique"):
        split_documents([("a", "x"), ("a", "y")], 0.5, 0)
    with pytest.raises(ValueError, match="at least 2 documents"):
        split_documents([("a", "x")], 0.5, 0)


# --------------------------------------------------------------------------- checkpoints


def test_resume_equals_uninterrupted(tmp_path):
    config = TrainConfig(**{**TINY.__dict__, "steps": 20, "eval_interval": 8})
    straight = train(DOCS, config, tmp_path / "straight", progress=False)
    first = train(DOCS, config, tmp_path / "resumed", stop_at=10, progress=False)  # "interrupted" after step 10
    assert first["step"] == 10 and not first["finished"] and "val_bpb" not in first
    assert json.loads((tmp_path / "resumed" / "config.json").read_text())["step"] == 10
    resumed = train(DOCS, config, tmp_path / "resumed", resume=True, progress=False)
    assert resumed["step"] == 20 and resumed["finished"]
    for name in ("model.safetensors", "optimizer.safetensors"):
        a, b = load_file(tmp_path / "straight" / name), load_file(tmp_path / "resumed" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert resumed["val_loss"] == straight["val_loss"]
    ma, mb = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("straight", "resumed"))
    assert ma["train"] == mb["train"] and ma["eval"] == mb["eval"]
    a, b = (json.loads((tmp_path / d / "config.json").read_text())["optimizer"] for d in ("straight", "resumed"))
    assert a == b and set(a["step"].values()) == {20}


def test_resume_refuses_another_configuration(trained):
    _, out = trained
    with pytest.raises(CheckpointError, match="d_model"):
        train(DOCS, TrainConfig(**{**TINY.__dict__, "d_model": 64}), out, resume=True, progress=False)
    with pytest.raises(CheckpointError, match="documents"):
        train(DOCS[:5], None, out, resume=True, progress=False)


def test_checkpoint_files_hold_no_pickle(trained):
    _, out = trained
    names = {p.name for p in out.iterdir()}
    assert names == {"model.safetensors", "optimizer.safetensors", "config.json", "tokenizer.txt", "metrics.json",
                     "loss_curve.png"}  # no temporary files left behind
    for path in out.iterdir():
        head = path.read_bytes()
        assert not head.startswith((b"\x80", b"PK")), f"{path.name} looks like a pickle / torch.save zip"
        if path.suffix == ".safetensors":
            (n,) = struct.unpack("<Q", head[:8])
            header = json.loads(head[8:8 + n])  # safetensors: 8-byte length, JSON header, raw tensor bytes
            assert header["__metadata__"]["step"] == "40"
        elif path.suffix == ".json":
            json.loads(head)
        elif path.suffix == ".png":
            assert head.startswith(b"\x89PNG\r\n\x1a\n")
        else:
            head.decode("utf-8")
    moments = load_file(out / "optimizer.safetensors")
    model, _, config = load_checkpoint(out)
    assert config == TINY
    assert {f"{n}.exp_avg" for n, _ in model.named_parameters()} <= moments.keys()


def test_checkpoint_loads_back_to_the_same_logits(trained, tmp_path):
    # save -> load gives exactly the same function
    tokenizer = train_tokenizer([t for _, t in DOCS], 300)
    model = build_model(TINY, tokenizer.vocab_size)
    history = {"train": [], "eval": []}
    save_checkpoint(tmp_path, model, make_optimizer(model, TINY), tokenizer, TINY, 0, history, {})
    loaded, loaded_tokenizer, _ = load_checkpoint(tmp_path)
    ids = torch.tensor([tokenizer.encode(DOCS[0][1][:200])[:TINY.context_length]])  # (1, T)
    model.eval()
    assert torch.equal(model(ids)[0], loaded(ids)[0])
    assert loaded_tokenizer.merges == tokenizer.merges and loaded_tokenizer.special_tokens == {EOT: 299}
    # the trained run: the reloaded model reproduces the validation loss measured in memory at the end
    summary, out = trained
    model, tokenizer, _ = load_checkpoint(out)
    val_names = set(json.loads((out / "config.json").read_text())["data"]["val_documents"])
    result = evaluate_texts(model, tokenizer, [t for n, t in DOCS if n in val_names])
    assert result.loss == pytest.approx(summary["val_loss"], rel=1e-6)
    assert result.bits_per_byte == pytest.approx(summary["val_bpb"], rel=1e-6)


@pytest.mark.parametrize("name", ["model.safetensors", "config.json", "tokenizer.txt"])
def test_a_truncated_checkpoint_names_the_file(trained, tmp_path, name):
    _, out = trained
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    data = (broken / name).read_bytes()
    (broken / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=name.replace(".", r"\.")):
        load_checkpoint(broken)


def test_a_truncated_optimizer_state_names_the_file_on_resume(trained, tmp_path):
    _, out = trained
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    data = (broken / "optimizer.safetensors").read_bytes()
    (broken / "optimizer.safetensors").write_bytes(data[:100])
    with pytest.raises(CheckpointError, match=r"optimizer\.safetensors"):
        train(DOCS, None, broken, resume=True, progress=False)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nothing")
    with pytest.raises(CheckpointError, match="config.json"):
        read_train_config(tmp_path)


# --------------------------------------------------------------------------- bits per byte


def test_bits_per_byte_formula():
    assert bits_per_byte(10 * math.log(2), 5) == pytest.approx(2.0)  # 10 bits over 5 bytes
    assert bits_per_byte(8 * math.log(256), 8) == pytest.approx(8.0)  # uniform over bytes: 8 bits each


def test_bits_per_byte_by_hand_on_a_short_text():
    tokenizer = train_tokenizer([t for _, t in DOCS], 300)
    model = build_model(TINY, tokenizer.vocab_size).eval()
    text = "Step: θ ← θ − η ∇L."  # multi-byte characters: bytes != characters
    ids = tokenizer.encode(text)
    assert len(ids) < TINY.context_length  # one window
    seq = torch.tensor([[tokenizer.special_tokens[EOT], *ids]])  # (1, n+1)
    with torch.no_grad():
        logits, _ = model(seq[:, :-1])  # (1, n, V)
    nats = -F.log_softmax(logits[0], dim=-1).gather(1, seq[0, 1:, None]).sum().item()
    by_hand = nats / len(text.encode("utf-8")) / math.log(2)
    result = evaluate_texts(model, tokenizer, [text])
    assert result.tokens == len(ids) and result.bytes == len(text.encode("utf-8")) > len(text)
    assert result.bits_per_byte == pytest.approx(by_hand, rel=1e-5)


def test_bits_per_byte_of_a_uniform_model_over_many_windows():
    """With every weight 0 the logits are 0: each token costs ln V nats, so bpb = tokens log2(V) / bytes."""
    tokenizer = train_tokenizer([t for _, t in DOCS], 300)
    model = build_model(TINY, tokenizer.vocab_size)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    texts = [DOCS[0][1][:3000], "∑ é ∇", DOCS[1][1][:500]]  # the first spans many windows of 32 tokens
    n_tokens = sum(len(tokenizer.encode(t)) for t in texts)
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    result = evaluate_texts(model, tokenizer, texts, batch_size=3)
    assert result.tokens == n_tokens > 5 * TINY.context_length
    assert result.bits_per_byte == pytest.approx(n_tokens * math.log2(tokenizer.vocab_size) / n_bytes, rel=1e-5)


# --------------------------------------------------------------------------- sampling


def test_sample_is_reproducible_with_a_seed(trained):
    _, out = trained
    model, tokenizer, _ = load_checkpoint(out)
    a = sample(model, tokenizer, "The gradient", max_new_tokens=80, temperature=1.0, top_k=None, seed=3)
    b = sample(model, tokenizer, "The gradient", max_new_tokens=80, temperature=1.0, top_k=None, seed=3)
    assert a == b and isinstance(a, str) and a
    others = {sample(model, tokenizer, "The gradient", max_new_tokens=80, temperature=1.0, seed=s) for s in range(4)}
    assert len(others) > 1
    # 80 tokens do not fit in a context of 32 alongside the prompt: the window slides
    greedy = sample(model, tokenizer, "x " * 100, max_new_tokens=3, temperature=0)
    assert greedy == sample(model, tokenizer, "x " * 100, max_new_tokens=3, temperature=0)


# --------------------------------------------------------------------------- the command line


def run(*args, timeout=None):
    return run_mathrag(*args)


@pytest.fixture(scope="module")
def cli_trained():
    result = run("scratch", "train", "--quick", "--json", timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_cli_train_quick_writes_the_plot_and_reports_bits_per_byte(cli_trained):
    home = Path(os.environ["MATHRAG_HOME"])
    out = Path(cli_trained["out"])
    assert out == home / "scratch" / "mini-gpt"
    assert (out / "loss_curve.png").read_bytes().startswith(b"\x89PNG")
    assert 0 < cli_trained["val_bpb"] < 8 and cli_trained["finished"]
    assert cli_trained["documents"]["train"] + cli_trained["documents"]["val"] == len(NOTE_PATHS)


def test_cli_sample_prints_text(cli_trained):
    result = run("scratch", "sample", "--prompt", "The chain rule", "--max-new-tokens", "30", "--seed", "1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("The chain rule") and len(result.stdout.strip()) > len("The chain rule")
    again = run("scratch", "sample", "--prompt", "The chain rule", "--max-new-tokens", "30", "--seed", "1")
    assert again.stdout == result.stdout


def test_cli_errors_are_one_line(tmp_path):
    result = run("scratch", "sample", "--checkpoint", str(tmp_path / "none"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("mathrag: error: no checkpoint") and result.stderr.count("\n") == 1
    result = run("scratch", "train", "--resume", "--out", str(tmp_path / "none"))
    assert result.returncode == 2 and "Traceback" not in result.stderr and "config.json" in result.stderr
