r"""Byte-level byte-pair encoding (BPE), the tokenizer family of GPT-2, Llama 3 and SmolLM2.

A language model reads and writes integers. The tokenizer is the pair of maps

    encode:  text --UTF-8--> bytes --pre-tokenize--> chunks --apply merges--> token ids
    decode:  token ids --vocab--> bytes --concatenate, UTF-8--> text

This module trains such a tokenizer (``BPETokenizer.train``), and loads SmolLM2's from its GGUF
file (``BPETokenizer.from_gguf``) with the same ids as Hugging Face's `tokenizers` library.

Why bytes: nothing is unknown
-----------------------------
UTF-8 writes every Unicode code point as 1 to 4 bytes: "a" = 61, "é" = c3 a9, "😀" = f0 9f 98 80.
A byte-level vocabulary starts with a token for each of the 256 byte values, so every string has
an encoding (in the worst case one token per byte), and decoding, which concatenates the tokens'
bytes and reads them as UTF-8, returns the input exactly. No ``<unk>`` token is needed. (A
vocabulary may still lack some byte tokens: SmolLM2's has 235 of the 256, see ``from_gguf``.)

What a merge is
---------------
A merge is a rule ``(a, b) -> t``: wherever token ``a`` is directly followed by token ``b``,
write the single token ``t`` whose bytes are ``bytes(a) + bytes(b)``. The trained model *is* an
ordered list of merges; a merge's position in the list is its *rank* ``r = 0, 1, 2, ...``. The
vocabulary follows from it: the 256 bytes, one new token per merge, plus the special tokens.

Training picks the most frequent pair (``bpe_train`` has the details)
---------------------------------------------------------------------
Cut the training text into pre-tokens ``w`` (below) with counts ``f(w)``, each a sequence of byte
tokens. Then, until the vocabulary has ``V`` tokens:

    c(a, b)  = sum_w f(w) * n_w(a, b)       n_w(a, b): how often a is directly followed by b in w
    (a*, b*) = argmax_{(a, b)} c(a, b)      ties: smallest (a, b)
    learn (a*, b*) -> t (the next id) and rewrite a* b* as t in every word, left to right.

Each merge shortens the training text by ``c(a*, b*)`` tokens (a little less for an overlapping
run such as ``a a a``), so BPE is a greedy compressor: frequent words end up as one token, rare
ones are spelled from pieces.

Encoding applies merges by rank
-------------------------------
To encode a chunk, start from its bytes and repeat: among the adjacent pairs that have a merge,
take the one with the lowest rank and merge all its occurrences (left to right); stop when no
adjacent pair has a merge. This equals replaying the merges in training order: merge ``r`` only
creates pairs containing its new token ``t``, and every merge that uses ``t`` comes after ``r``
(``BPETokenizer`` checks this for any merge list it is given, SmolLM2's included).

Two things keep encoding fast. Text repeats its chunks (" the", "\n"), so each chunk's ids are
cached. And the loop above rescans the chunk after every merge, ``O(n^2)`` for ``n`` bytes, so
chunks longer than ``LONG_CHUNK`` bytes use a heap of ``(rank, position)`` instead (``_bpe_heap``):
same result, ``O(n log n)``.

Pre-tokenization
----------------
Before BPE, a regular expression cuts the text into chunks and merges never cross a chunk boundary.
GPT-2's pattern ``GPT2_PATTERN`` keeps English contractions ('s, 't, ...), a letter run with one
optional leading space (" dog"), a number run (" 2024"), a punctuation run ("."), and whitespace
apart. ``\s+(?!\S)`` takes a whitespace run except its last character when a word follows, so that
the space can start the next chunk (" dog").

SmolLM2 splits every digit into its own chunk first (its tokenizer.json runs the pre-tokenizers
``Digits(individual_digits=True)`` then ``ByteLevel``; llama.cpp's "smollm" pre-tokenizer runs the
regex ``\p{N}`` then GPT-2's). ``SMOLLM2_PATTERN`` is the same thing as a single regex: ``\p{N}``
instead of `` ?\p{N}+``, and a whitespace run also ends before a digit. So "in 2024" becomes
"in", " ", "2", "0", "2", "4" (the space before a number is a token of its own) and "x  1" becomes
"x", "  ", "1" (GPT-2's pattern gives "x", " ", " 1").

Special tokens
--------------
Strings such as ``<|im_start|>`` have their own ids and no merge produces them. They are found in
the text *before* pre-tokenization, and only when the caller allows it (``encode``'s
``allowed_special``): text from a user that contains ``<|im_end|>`` must not close a chat turn.

GPT-2's printable bytes
-----------------------
Vocabulary files (tokenizer.json, GGUF) store tokens as text, so GPT-2 maps each byte to a visible
character: printable Latin-1 bytes map to themselves and the other 68 (control bytes, space, ...)
to the code points 256, 257, ... in order. Space 0x20 becomes "Ġ" (U+0120), newline "Ċ".
``bytes_to_unicode`` builds the map; ``from_gguf`` inverts it.
"""

from __future__ import annotations

import functools
import heapq
import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from itertools import pairwise
from pathlib import Path
from typing import Literal

import regex

from .bpe_train import Merge, merge_pair, train_bpe, train_bpe_naive
from .gguf_weights import smollm2_gguf_path

# GPT-2's pre-tokenizer regex (also the ByteLevel pre-tokenizer of Hugging Face `tokenizers`).
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

# SmolLM2: every digit alone (Digits(individual_digits=True)), then GPT-2's regex inside the pieces.
# As one regex: digits match `\p{N}` one at a time, and a whitespace run may end before a digit
# (in the two-step version the digit is outside the piece, so the run ends at the piece's end).
SMOLLM2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+|\s+(?![^\s\p{N}])|\s+"""

# GGUF `tokenizer.ggml.pre` names -> pattern.
GGUF_PRETOKENIZERS = {"smollm": SMOLLM2_PATTERN, "gpt-2": GPT2_PATTERN, "gpt2": GPT2_PATTERN}

AllowedSpecial = Literal["none_raise", "all", "none"] | AbstractSet[str]

FORMAT_HEADER = "bpe-tokenizer v1"

# Chunks longer than this many bytes are merged with a heap (`_bpe_heap`) instead of rescanning.
LONG_CHUNK = 64


class GGUFTokenizerError(ValueError):
    """A GGUF file is missing, unreadable, or does not hold a byte-level BPE tokenizer."""


@functools.cache
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map from each byte 0..255 to a printable character (how vocab files spell tokens).

    Bytes that are printable Latin-1 characters ('!'..'~', '¡'..'¬', '®'..'ÿ', 188 of them) map to
    themselves; the remaining 68 map to chr(256), chr(257), ... in byte order. So 0x20 (space) is
    'Ġ' = chr(256 + 32) and 0x0A (newline) is 'Ċ' = chr(256 + 10).
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


class BPETokenizer:
    """A byte-level BPE tokenizer: byte tokens, an ordered merge list, special tokens, a split regex.

    Attributes (treat as read-only; build a new tokenizer to change them):

    - ``merges``: ``(left id, right id) -> new id``, in rank order (dicts keep insertion order).
    - ``vocab``: ``id -> bytes`` for every token, special tokens included (as their UTF-8 text).
    - ``special_tokens``: ``text -> id``.
    - ``byte_ids``: ``byte value -> id`` of the single-byte tokens (the identity map after ``train``).
    - ``missing_bytes``: byte values with no token. Encoding drops them, as Hugging Face and
      llama.cpp do for SmolLM2; empty for a trained tokenizer.
    - ``pattern``: the pre-tokenization regex.
    """

    def __init__(
        self,
        merges: Mapping[tuple[int, int], int] | None = None,
        special_tokens: Mapping[str, int] | None = None,
        pattern: str = GPT2_PATTERN,
        byte_ids: Mapping[int, int] | None = None,
        cache_size: int = 1 << 16,
    ) -> None:
        self.pattern = pattern
        self.byte_ids: dict[int, int] = dict(byte_ids) if byte_ids is not None else {b: b for b in range(256)}
        self.merges: dict[tuple[int, int], int] = dict(merges or {})
        self.special_tokens: dict[str, int] = dict(special_tokens or {})
        self._cache_size = cache_size
        self._rebuild()

    # ------------------------------------------------------------------ derived state
    def _rebuild(self) -> None:
        """Derive the vocabulary, merge ranks, compiled regexes and a fresh chunk cache."""
        if any(not 0 <= b < 256 for b in self.byte_ids) or len(set(self.byte_ids.values())) != len(self.byte_ids):
            raise ValueError("byte_ids must map distinct byte values 0..255 to distinct ids")
        vocab: dict[int, bytes] = {i: bytes([b]) for b, i in self.byte_ids.items()}
        for (a, b), new in self.merges.items():  # in rank order, so a and b are already known
            if a not in vocab or b not in vocab:
                raise ValueError(f"merge ({a}, {b}) -> {new} uses a token that no earlier merge or byte defines")
            if new in vocab:
                raise ValueError(f"merge ({a}, {b}) -> {new} reuses id {new}")
            vocab[new] = vocab[a] + vocab[b]
        for text, i in self.special_tokens.items():
            if i in vocab:
                raise ValueError(f"special token {text!r} reuses id {i}")
            vocab[i] = text.encode("utf-8")
        self.vocab = vocab
        self.missing_bytes = frozenset(set(range(256)) - set(self.byte_ids))
        # rank of each merge: lower = learned earlier = applied first
        self._ranks = {pair: rank for rank, pair in enumerate(self.merges)}
        self._split = regex.compile(self.pattern)
        # Longest first, so that where two special tokens start at the same place the longer wins.
        specials = sorted(self.special_tokens, key=len, reverse=True)
        self._special_re = regex.compile("|".join(regex.escape(s) for s in specials)) if specials else None
        # Texts repeat the same chunks (" the", " of", "\n"): remember each chunk's ids.
        self._encode_chunk = functools.lru_cache(maxsize=self._cache_size)(self._bpe)

    @property
    def vocab_size(self) -> int:
        """1 + the largest id: the number of rows an embedding table for this tokenizer needs."""
        return max(self.vocab) + 1 if self.vocab else 0

    def __repr__(self) -> str:
        return (
            f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, "
            f"special_tokens={len(self.special_tokens)})"
        )

    def with_pattern(self, pattern: str) -> BPETokenizer:
        """The same vocabulary and merges with another pre-tokenization regex."""
        return BPETokenizer(self.merges, self.special_tokens, pattern, self.byte_ids, self._cache_size)

    # ------------------------------------------------------------------ training
    def pretokenize(self, text: str) -> list[str]:
        """Cut text into the chunks that BPE works on separately (no special-token handling)."""
        return self._split.findall(text)

    def count_pretokens(self, text: str) -> Counter[bytes]:
        """Each distinct chunk's UTF-8 bytes with how often it occurs: the trainer's input ``f(w)``."""
        return Counter(chunk.encode("utf-8") for chunk in self._split.findall(text))

    def train(
        self,
        text: str,
        vocab_size: int,
        *,
        special_tokens: Sequence[str] = (),
        naive: bool = False,
        verbose: bool = False,
    ) -> BPETokenizer:
        """Learn merges from ``text`` until the vocabulary has ``vocab_size`` ids; returns ``self``.

        ``vocab_size`` counts the 256 bytes, the merges and the special tokens, which get the ids
        after the merges. Occurrences of the special tokens in ``text`` are cut out before
        counting, so no merge spans them. Training stops early if the text runs out of pairs.
        ``naive=True`` uses the slow reference trainer (same result).
        """
        num_merges = vocab_size - 256 - len(special_tokens)
        if num_merges < 0:
            raise ValueError(f"vocab_size {vocab_size} is below 256 bytes + {len(special_tokens)} special tokens")
        if len(set(special_tokens)) != len(special_tokens):
            raise ValueError("special_tokens has duplicates")
        pieces = [text]
        if special_tokens:
            cut = regex.compile("|".join(regex.escape(s) for s in sorted(special_tokens, key=len, reverse=True)))
            pieces = cut.split(text)
        word_counts: Counter[bytes] = Counter()
        for piece in pieces:
            word_counts.update(self.count_pretokens(piece))
        learned: list[Merge] = (train_bpe_naive if naive else train_bpe)(word_counts, num_merges)
        self.byte_ids = {b: b for b in range(256)}
        self.merges = {m.pair: m.new_id for m in learned}
        first_special = 256 + len(learned)
        self.special_tokens = {s: first_special + k for k, s in enumerate(special_tokens)}
        self._rebuild()
        if verbose:
            for m in learned:
                print(f"merge {m.new_id - 256:5d}: {self.vocab[m.left]!r} + {self.vocab[m.right]!r} (count {m.count})")
        return self

    # ------------------------------------------------------------------ encoding
    def _bpe(self, chunk: str) -> tuple[int, ...]:
        """BPE on one chunk: start from its byte tokens, merge the lowest-rank pair until none applies."""
        byte_ids = self.byte_ids
        # A byte without a token (possible in a loaded vocabulary) is dropped, like Hugging Face does.
        ids = [byte_ids[b] for b in chunk.encode("utf-8") if b in byte_ids]
        if len(ids) > LONG_CHUNK:
            return tuple(self._bpe_heap(ids))
        ranks, merges, inf = self._ranks, self.merges, len(self._ranks)
        while len(ids) >= 2:
            # the adjacent pair that was learned first
            pair = min(pairwise(ids), key=lambda p: ranks.get(p, inf))
            if pair not in ranks:
                break  # no adjacent pair has a merge
            ids = merge_pair(ids, pair, merges[pair])
        return tuple(ids)

    def _bpe_heap(self, ids: list[int]) -> list[int]:
        """The same result as the loop in ``_bpe``, in O(n log n) rather than O(n^2) for an n-token chunk.

        The loop rescans the whole chunk after each merge, which is slow for a long chunk (a 20,000
        letter run: seconds). Here the tokens form a linked list and a heap holds ``(rank, position)``
        for each adjacent pair that has a merge. Popping the heap gives the lowest rank, and among equal
        ranks the leftmost position: the order in which the loop merges. A merge only changes the
        pairs with its two neighbours, which are pushed; entries made stale by earlier merges are
        skipped when popped. (Hugging Face's BPE model works the same way.)
        """
        ranks, merges = self._ranks, self.merges
        tokens: list[int | None] = list(ids)  # None: absorbed into the token on its left
        nxt = [*range(1, len(ids)), -1]  # next live position, -1 at the end
        prv = list(range(-1, len(ids) - 1))  # previous live position, -1 at the start
        heap = [(ranks[pair], i) for i, pair in enumerate(pairwise(ids)) if pair in ranks]
        heapq.heapify(heap)
        while heap:
            rank, i = heapq.heappop(heap)
            j = nxt[i]
            if tokens[i] is None or j == -1 or ranks.get((tokens[i], tokens[j])) != rank:
                continue  # stale: position i was absorbed or its right neighbour changed
            tokens[i], tokens[j] = merges[tokens[i], tokens[j]], None
            nxt[i] = nxt[j]
            if nxt[i] != -1:
                prv[nxt[i]] = i
            for left in (prv[i], i):  # the two pairs that now contain the new token
                if left != -1 and nxt[left] != -1:
                    r = ranks.get((tokens[left], tokens[nxt[left]]))
                    if r is not None:
                        heapq.heappush(heap, (r, left))
        return [t for t in tokens if t is not None]

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode text treating special-token strings as ordinary text."""
        ids: list[int] = []
        for chunk in self._split.findall(text):
            ids.extend(self._encode_chunk(chunk))
        return ids

    def encode(self, text: str, allowed_special: AllowedSpecial = "none_raise") -> list[int]:
        """Encode text to token ids; ``allowed_special`` says what special-token strings in ``text`` mean.

        - ``"none_raise"`` (default): a special-token string in the text raises ``ValueError``.
        - ``"all"``: every special-token string becomes its special id.
        - a set of special tokens: those become special ids; any other one in the text raises.
        - ``"none"``: special-token strings are encoded as ordinary text.
        """
        if allowed_special == "none" or self._special_re is None:
            return self.encode_ordinary(text)
        if allowed_special == "all":
            allowed = set(self.special_tokens)
        elif allowed_special == "none_raise":
            allowed = set()
        elif isinstance(allowed_special, AbstractSet):
            unknown = set(allowed_special) - set(self.special_tokens)
            if unknown:
                raise ValueError(f"allowed_special names tokens that are not special tokens: {sorted(unknown)}")
            allowed = set(allowed_special)
        else:
            raise ValueError(f"allowed_special must be 'none_raise', 'all', 'none' or a set, not {allowed_special!r}")

        ids: list[int] = []
        start = 0
        for match in self._special_re.finditer(text):
            token = match.group()
            if token not in allowed:
                raise ValueError(
                    f"text contains the special token {token!r} at position {match.start()}; pass "
                    f"allowed_special='all' (or a set containing it) to encode it as its special id, "
                    f"or allowed_special='none' to encode it as ordinary text"
                )
            ids.extend(self.encode_ordinary(text[start : match.start()]))
            ids.append(self.special_tokens[token])
            start = match.end()
        ids.extend(self.encode_ordinary(text[start:]))
        return ids

    # ------------------------------------------------------------------ decoding
    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """Concatenate the tokens' bytes."""
        try:
            return b"".join(self.vocab[i] for i in ids)
        except KeyError as e:
            raise ValueError(f"unknown token id {e.args[0]}") from None

    def decode(self, ids: Iterable[int]) -> str:
        """Token ids back to text. Bytes that are not valid UTF-8 (a cut-off character) become U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # ------------------------------------------------------------------ save / load
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the tokenizer as readable text.

        Layout: a header line; ``pattern <JSON string>``; ``bytes identity`` or ``bytes N`` followed by
        N lines ``<byte> <id>``; ``special N`` then N lines ``<id> <JSON string>``; ``merges N`` then
        one merge per line in rank order, ``<left id> <right id> <new id>  # <merged text>`` (the part
        after the ids is only for people).
        """
        lines = [FORMAT_HEADER, f"pattern {json.dumps(self.pattern)}"]
        if self.byte_ids == {b: b for b in range(256)}:
            lines.append("bytes identity")
        else:
            lines.append(f"bytes {len(self.byte_ids)}")
            lines += [f"{b} {i}" for b, i in sorted(self.byte_ids.items())]
        lines.append(f"special {len(self.special_tokens)}")
        lines += [f"{i} {json.dumps(s)}" for s, i in self.special_tokens.items()]
        lines.append(f"merges {len(self.merges)}")
        for (a, b), new in self.merges.items():
            shown = self.vocab[new].decode("utf-8", errors="backslashreplace")
            lines.append(f"{a} {b} {new}  # {json.dumps(shown, ensure_ascii=False)}")
        Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BPETokenizer:
        """Read a file written by ``save``."""
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        pos = 0

        def take(prefix: str) -> str:
            nonlocal pos
            if pos >= len(lines) or not lines[pos].startswith(prefix):
                got = lines[pos] if pos < len(lines) else "end of file"
                raise ValueError(f"{path}: line {pos + 1}: expected {prefix!r}, got {got!r}")
            pos += 1
            return lines[pos - 1][len(prefix) :]

        def block(count: int) -> list[str]:
            nonlocal pos
            if pos + count > len(lines):
                raise ValueError(f"{path}: file ends early (expected {count} lines from line {pos + 1})")
            pos += count
            return lines[pos - count : pos]

        take(FORMAT_HEADER)
        pattern = json.loads(take("pattern "))
        size = take("bytes ")
        if size == "identity":
            byte_ids = {b: b for b in range(256)}
        else:
            byte_ids = {int(b): int(i) for b, i in (line.split() for line in block(int(size)))}
        special = {}
        for line in block(int(take("special "))):
            i, text = line.split(" ", 1)
            special[json.loads(text)] = int(i)
        merges = {}
        for line in block(int(take("merges "))):
            a, b, new = line.split()[:3]
            merges[int(a), int(b)] = int(new)
        return cls(merges, special, pattern, byte_ids)

    # ------------------------------------------------------------------ GGUF
    @classmethod
    def from_gguf(cls, path: str | os.PathLike[str] | None = None, *, pattern: str | None = None) -> BPETokenizer:
        """Load the byte-level BPE tokenizer stored in a GGUF file (default: SmolLM2's, ``smollm2_gguf_path()``).

        Reads ``tokenizer.ggml.tokens`` (id -> token text, bytes spelled with ``bytes_to_unicode``),
        ``tokenizer.ggml.merges`` ("left right" per line, in rank order) and
        ``tokenizer.ggml.token_type`` (3 = control, 4 = user defined: special tokens, stored as
        plain text). ``pattern`` defaults to the one named by ``tokenizer.ggml.pre``: "smollm" gives
        ``SMOLLM2_PATTERN``, as in SmolLM2's tokenizer.json and in llama.cpp. (transformers'
        ``AutoTokenizer.from_pretrained(..., gguf_file=...)`` ignores that key and splits with
        ``GPT2_PATTERN``; ``from_gguf(pattern=GPT2_PATTERN)`` reproduces its ids. The two give different
        ids where a whitespace run precedes a digit, as in "x  1" or a blank line before "1.", and
        next to numerals such as "²" that have merges of their own; 16 of the 60 notes differ.)

        Byte tokens missing from the vocabulary (SmolLM2 lacks 21, among them 0x04 and 0xF1) are
        dropped when encoding, as Hugging Face and llama.cpp do: such text does not round-trip.

        Raises ``FileNotFoundError`` if the file does not exist and ``GGUFTokenizerError`` (a
        ``ValueError``) if it is truncated, corrupt or holds no byte-level BPE tokenizer; both
        messages name the file.
        """
        from gguf import GGUFReader  # imported here: reading GGUF is optional for the rest of the module

        path = Path(path) if path is not None else smollm2_gguf_path()
        if not path.is_file():
            raise FileNotFoundError(f"GGUF file not found: {path}")
        try:
            reader = GGUFReader(path)
            fields = reader.fields

            def field(key: str):
                if key not in fields:
                    raise GGUFTokenizerError(f"{path} has no {key!r} entry, so it holds no BPE tokenizer")
                return fields[key].contents()

            model = field("tokenizer.ggml.model")
            tokens: list[str] = field("tokenizer.ggml.tokens")
            merge_lines: list[str] = field("tokenizer.ggml.merges")
            types = field("tokenizer.ggml.token_type") if "tokenizer.ggml.token_type" in fields else [1] * len(tokens)
            pre = fields["tokenizer.ggml.pre"].contents() if "tokenizer.ggml.pre" in fields else "gpt2"
        except GGUFTokenizerError:
            raise
        except Exception as e:  # truncated or corrupt: numpy/struct errors from deep inside the reader
            raise GGUFTokenizerError(
                f"could not read the GGUF file {path} (truncated or corrupt?): {type(e).__name__}: {e}"
            ) from e

        pattern = _gguf_pattern(path, model, len(tokens), len(types), pre, pattern)
        special, byte_ids, merges = _gguf_vocabulary(path, tokens, types, merge_lines)
        tok = cls(merges, special, pattern, byte_ids)
        _check_gguf_tokens(path, tok, tokens, special)
        return tok


# ---------------------------------------------------------------------- GGUF: the steps of from_gguf


def _gguf_pattern(path: Path, model: str, n_tokens: int, n_types: int, pre: str, pattern: str | None) -> str:
    """Check that a GGUF file holds a byte-level BPE tokenizer; the pre-tokenizer pattern to split with."""
    if model != "gpt2":
        raise GGUFTokenizerError(f"{path}: tokenizer.ggml.model is {model!r}, not 'gpt2' (byte-level BPE)")
    if n_types != n_tokens:
        raise GGUFTokenizerError(f"{path}: {n_tokens} tokens but {n_types} token types")
    if pattern is None:
        if pre not in GGUF_PRETOKENIZERS:
            raise GGUFTokenizerError(f"{path}: unknown pre-tokenizer {pre!r}; pass pattern= explicitly")
        pattern = GGUF_PRETOKENIZERS[pre]
    return pattern


def _gguf_vocabulary(path: Path, tokens: list[str], types: list[int], merge_lines: list[str],
                     ) -> tuple[dict[str, int], dict[int, int], dict[tuple[int, int], int]]:
    """(special tokens, byte -> id, merges (left, right) -> id) from GGUF's token texts, types and merge lines."""
    byte_of_char = {c: b for b, c in bytes_to_unicode().items()}
    special: dict[str, int] = {}
    byte_ids: dict[int, int] = {}
    token_id: dict[str, int] = {}
    for i, (text, kind) in enumerate(zip(tokens, types, strict=True)):
        if kind in (3, 4):  # control / user defined: matched literally in the text
            special[text] = i
            continue
        token_id[text] = i
        if len(text) == 1 and text in byte_of_char:
            byte_ids[byte_of_char[text]] = i
    merges: dict[tuple[int, int], int] = {}
    for rank, line in enumerate(merge_lines):
        parts = line.split(" ")
        if len(parts) != 2 or any(p not in token_id for p in parts) or parts[0] + parts[1] not in token_id:
            raise GGUFTokenizerError(f"{path}: merge {rank} {line!r} does not join two tokens into a token")
        merges[token_id[parts[0]], token_id[parts[1]]] = token_id[parts[0] + parts[1]]
    return special, byte_ids, merges


def _check_gguf_tokens(path: Path, tok: BPETokenizer, tokens: list[str], special: dict[str, int]) -> None:
    """Every GGUF token must come back as the vocabulary entry with its id."""
    byte_of_char = {c: b for b, c in bytes_to_unicode().items()}
    special_ids = set(special.values())
    for i, text in enumerate(tokens):
        if i in special_ids:
            expected = text.encode("utf-8")
        elif all(c in byte_of_char for c in text):
            expected = bytes(byte_of_char[c] for c in text)
        else:
            raise GGUFTokenizerError(f"{path}: token {i} {text!r} is not spelled in GPT-2's byte characters")
        if tok.vocab.get(i) != expected:
            raise GGUFTokenizerError(f"{path}: token {i} {text!r} is neither a byte, a merge result nor special")
