"""`mathrag finetune lora` on a small slice: an adapter is written, loads, changes the logits, merges to the
same outputs, answers as a generator, refuses to overwrite, and a killed run resumes to the same end."""

import json

import pytest
import torch
from transformers import TrainerCallback

from finetune.lora import FinetuneError, adapters_dir, encode, load_adapter_model, merge_adapter, train_lora

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def card(tiny_card):
    return tiny_card


def prompt_ids(tokenizer):
    messages = [{"role": "user", "content": "The singular values are the square roots of the eigenvalues of "
                                            "$A^T A$ [1].\n\nUsing only the text above, answer briefly: What are "
                                            "singular values?"}]
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                         return_dict=True)["input_ids"]


def test_the_adapter_is_written_loads_and_changes_the_logits(ft_settings, card):
    from transformers import AutoModelForCausalLM

    from rag.generators import ensure_smollm2

    folder = adapters_dir(ft_settings) / "tiny"
    assert {"adapter_config.json", "adapter_model.safetensors", "run_card.json", "loss_curve.png"} <= {
        p.name for p in folder.iterdir()}
    saved = json.loads((folder / "run_card.json").read_text())
    assert saved["metrics"]["steps"] == 2 and saved["data"]["train_examples"] == 8
    assert saved["metrics"]["tokens"] > 0 and 0 < saved["metrics"]["mfu"] < 1
    assert saved["parameters"]["trainable"] < saved["parameters"]["total"] / 50
    model, tokenizer = load_adapter_model(ft_settings, "tiny")
    base = AutoModelForCausalLM.from_pretrained(str(ensure_smollm2(ft_settings)), dtype=torch.float32).eval()
    ids = prompt_ids(tokenizer)
    with torch.inference_mode():
        tuned, plain = model(input_ids=ids).logits, base(input_ids=ids).logits
    moved = (tuned - plain).abs().max().item()
    assert moved > 1e-3  # training moved B away from zero

    merged_dir = merge_adapter(ft_settings, "tiny")
    merged = AutoModelForCausalLM.from_pretrained(str(merged_dir), dtype=torch.float32).eval()
    with torch.inference_mode():
        drift = (merged(input_ids=ids).logits - tuned).abs().max().item()
    # Merging folds B @ A into W: the same function up to float32 rounding (logits are ~30 in size),
    # far below what the two training steps changed.
    print(f"adapter moved logits by {moved:.4g}, merge drift {drift:.4g}")
    assert drift < 1e-3 and drift < moved / 10
    with pytest.raises(FinetuneError, match="exists; pass --overwrite"):
        merge_adapter(ft_settings, "tiny")


def test_labels_cover_only_the_answer(ft_settings, card):
    from transformers import AutoTokenizer

    from rag.generators import ensure_smollm2

    tok = AutoTokenizer.from_pretrained(str(ensure_smollm2(ft_settings)))
    item = encode(tok, [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A is B [1]."}], 100)
    learned = [t for t in item["labels"] if t != -100]
    assert tok.decode(learned) == "A is B [1].<|im_end|>\n"
    assert len(item["labels"]) == len(item["input_ids"]) and item["labels"][0] == -100
    assert encode(tok, [{"role": "user", "content": "word " * 200}, {"role": "assistant", "content": "x"}], 64) is None


def test_the_adapter_answers_as_a_generator(ft_settings, card, monkeypatch):
    from rag.generators import GeneratorError, get_generator

    gen = get_generator("smollm2+lora:tiny", ft_settings)
    text = "".join(gen.stream([{"role": "user", "content": "What is 2 + 2?"}], max_new_tokens=8))
    assert text.strip() and gen.condensed_context
    with pytest.raises(GeneratorError, match="no LoRA adapter 'nope'"):
        get_generator("smollm2+lora:nope", ft_settings)


def test_an_existing_name_is_refused_unless_overwrite(ft_settings, card, tiny_run):
    with pytest.raises(FinetuneError, match="an adapter named 'tiny' exists"):
        train_lora(ft_settings, "tiny", tiny_run(), progress=False)
    with pytest.raises(FinetuneError, match="nothing to resume for 'other'"):
        train_lora(ft_settings, "other", tiny_run(), resume=True, progress=False)
    with pytest.raises(FinetuneError, match="adapter name '../x'"):
        train_lora(ft_settings, "../x", tiny_run(), progress=False)


class Crash(TrainerCallback):
    """Kill the run right after the first checkpoint is written, as a power cut would."""

    def on_save(self, args, state, control, **kwargs):
        raise KeyboardInterrupt


def test_a_killed_run_resumes_to_the_same_end(ft_settings, card, tiny_run):
    with pytest.raises(KeyboardInterrupt):
        train_lora(ft_settings, "killed", tiny_run(), progress=False, callbacks=(Crash(),))
    assert not (adapters_dir(ft_settings) / "killed").exists()  # no half-written adapter
    resumed = train_lora(ft_settings, "killed", tiny_run(), resume=True, progress=False)
    assert resumed["metrics"]["resumed"] and resumed["metrics"]["steps"] == 2
    a, _ = load_adapter_model(ft_settings, "killed")
    b, _ = load_adapter_model(ft_settings, "tiny")  # the uninterrupted run with the same seed
    wa = {k: v for k, v in a.state_dict().items() if "lora_" in k}
    wb = {k: v for k, v in b.state_dict().items() if "lora_" in k}
    assert wa.keys() == wb.keys() and all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)
    assert resumed["metrics"]["last_logged_loss"] == pytest.approx(card["metrics"]["last_logged_loss"], abs=1e-5)
