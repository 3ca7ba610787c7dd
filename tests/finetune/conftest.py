"""Fixtures for the fine-tuning tests: a six-note corpus (two notes in each of three areas, so every area
has a validation note) with its own data directory; the converted SmolLM2 is shared with the session."""

import os
from pathlib import Path

import pytest

from rag.settings import Settings

NOTES = [
    "linear_algebra/svd.md",
    "linear_algebra/pca.md",
    "calculus/gradient.md",
    "calculus/chain_rule.md",
    "information_theory/entropy.md",
    "information_theory/cross_entropy_kl.md",
]


@pytest.fixture(scope="session")
def ft_settings(tmp_path_factory, copy_notes) -> Settings:
    root = tmp_path_factory.mktemp("finetune_small")
    home = root / "home"
    home.mkdir()
    shared = Path(os.environ["MATHRAG_HOME"]) / "models"  # convert SmolLM2 once per session, not per home
    shared.mkdir(parents=True, exist_ok=True)
    (home / "models").symlink_to(shared, target_is_directory=True)
    return Settings(home=home, corpus_dir=copy_notes(root, NOTES))


@pytest.fixture(scope="session")
def ft_data(ft_settings):
    """The manifest of the data synthesised from the small corpus."""
    from finetune.data import build_dataset

    return build_dataset(ft_settings, progress=False)


def _tiny_run(**changes):
    from finetune.presets import preset

    return preset("cpu-quick").override(max_steps=2, batch_size=2, max_train_examples=8, eval_examples=4,
                                        eval_steps=1, save_steps=1, logging_steps=1, max_length=320, **changes)


@pytest.fixture(scope="session")
def tiny_run():
    """tiny_run(**changes): two steps on eight short examples, enough to move an adapter, small enough for a test."""
    return _tiny_run


@pytest.fixture(scope="session")
def tiny_card(ft_settings, ft_data) -> dict:
    """The run card of the adapter 'tiny': two LoRA steps on the small corpus's data."""
    from finetune.lora import train_lora

    return train_lora(ft_settings, "tiny", _tiny_run(), preset_name="test", progress=False)
