"""Training byte-pair encoding: a naive trainer to read, and a fast one to use.

Both trainers take the training text already cut into pre-tokens and counted, as a mapping
``word bytes -> f(word)``, and learn ``num_merges`` merges. Token ids 0..255 are the bytes; the
merge learned at step ``k`` (its *rank*) creates token ``256 + k``.

One training step, written out
------------------------------
With every word ``w`` segmented into tokens, the count of an adjacent pair is

    c(a, b) = sum over words w of  f(w) * n_w(a, b)

where ``n_w(a, b)`` is the number of positions in ``w`` at which token ``a`` is immediately
followed by token ``b``. The step picks

    (a*, b*) = argmax c(a, b)        ties: the pair with the smallest (a, b) wins

and rewrites every ``a* b*`` as the new token, scanning each word left to right (so the
overlapping run ``a a a`` becomes ``aa a``). Because every occurrence turns two tokens into one,
the step shortens the training text by ``c(a*, b*)`` tokens (a little less for overlapping runs
such as ``a a a``, counted twice but merged once).

Tie rule. Among pairs with the same count the smallest pair of ids wins: first by the left id,
then by the right id. Ids are bytes first (in byte order) and then merges in the order they were
learned, so the rule prefers older tokens and is the same however a dict or heap happens to be
ordered. Both trainers apply it, so they must produce the very same merge list.

Naive trainer: ``train_bpe_naive``
----------------------------------
Recount every pair of every word after each merge: ``O(merges x total word length)``. Easy to check
by eye; used in the tests as the reference.

Fast trainer: ``train_bpe``
---------------------------
Two observations make training scale:

1. *A merge only changes the words that contain the pair.* Keep ``where[(a, b)]``, the set of
   words in which the pair occurs. After merging ``(a, b)`` only those words are rewritten; for
   each one subtract ``f(w)`` for every pair of its old segmentation and add ``f(w)`` for every
   pair of its new one. All other counts are untouched.
2. *Counts of existing pairs only go down.* Every pair a merge creates contains the new token, so
   it is brand new. So the best pair can be kept in a *lazy* max-heap of ``(-count, a, b)``:
   entries are never updated in place; when an entry is popped whose count is out of date, it is
   pushed back with its current count (or dropped if the pair is gone) and the next one is tried.
   An entry that is popped with an up-to-date count is the true maximum, because every other pair
   still has an entry whose stored count is at least its true count. Since the heap orders equal
   counts by ``(a, b)``, it also applies the tie rule.

Cost per merge: proportional to the total length of the words containing the pair, plus
``O(log n)`` heap work per changed pair, instead of a pass over the whole corpus.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise

Pair = tuple[int, int]


@dataclass(frozen=True)
class Merge:
    """One learned merge: ``left`` followed by ``right`` becomes ``new_id``.

    ``count`` is ``c(left, right)`` at the moment the merge was chosen: the number of tokens it
    saved on the training text (exactly, unless occurrences overlapped as in ``a a a``).
    """

    left: int
    right: int
    new_id: int
    count: int

    @property
    def pair(self) -> Pair:
        return (self.left, self.right)


def merge_pair(ids: list[int], pair: Pair, new_id: int) -> list[int]:
    """Replace every occurrence of ``pair`` in ``ids`` by ``new_id``, scanning left to right.

    >>> merge_pair([5, 6, 6, 6, 6, 7], (6, 6), 99)
    [5, 99, 99, 7]
    """
    a, b = pair
    out: list[int] = []
    i, n = 0, len(ids)
    while i < n:
        if i + 1 < n and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _words_and_freqs(word_counts: Mapping[bytes, int]) -> tuple[list[list[int]], list[int]]:
    """Each distinct pre-token as a list of byte ids, with its frequency. Single bytes have no pairs: skipped."""
    words, freqs = [], []
    for word, freq in word_counts.items():
        if len(word) >= 2 and freq > 0:
            words.append(list(word))
            freqs.append(freq)
    return words, freqs


def train_bpe_naive(word_counts: Mapping[bytes, int], num_merges: int) -> list[Merge]:
    """Reference trainer: after every merge, recount all pairs of all words from scratch.

    Stops early when no adjacent pair is left (every word is a single token).
    """
    words, freqs = _words_and_freqs(word_counts)
    merges: list[Merge] = []
    for step in range(num_merges):
        counts: Counter[Pair] = Counter()
        for word, freq in zip(words, freqs, strict=True):
            for pair in pairwise(word):
                counts[pair] += freq
        if not counts:
            break
        # Highest count; among equal counts the smallest (left, right).
        (a, b), count = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        new_id = 256 + step
        merges.append(Merge(a, b, new_id, count))
        words = [merge_pair(word, (a, b), new_id) for word in words]
    return merges


def _pair_counts_and_index(words: list[list[int]], freqs: list[int],
                           ) -> tuple[dict[Pair, int], dict[Pair, set[int]]]:
    """c(a, b) = sum_w f(w) * n_w(a, b) for every adjacent pair, and where[(a, b)]: the indices of the words with it."""
    counts: dict[Pair, int] = defaultdict(int)
    where: dict[Pair, set[int]] = defaultdict(set)
    for i, (word, freq) in enumerate(zip(words, freqs, strict=True)):
        for pair in pairwise(word):
            counts[pair] += freq
            where[pair].add(i)
    return counts, where


def train_bpe(word_counts: Mapping[bytes, int], num_merges: int) -> list[Merge]:
    """Fast trainer: incremental pair counts, an index of where each pair occurs, and a lazy max-heap.

    Returns exactly the merges of ``train_bpe_naive`` (same pairs, ids, counts and order).
    """
    words, freqs = _words_and_freqs(word_counts)

    # Initial counts c(a, b) and, for every pair, the set of words (by index) that contain it.
    counts, where = _pair_counts_and_index(words, freqs)

    # Max-heap via negated counts; equal counts come out smallest (a, b) first: the tie rule.
    heap = [(-count, a, b) for (a, b), count in counts.items()]
    heapq.heapify(heap)

    merges: list[Merge] = []
    while len(merges) < num_merges and heap:
        neg_count, a, b = heapq.heappop(heap)
        pair = (a, b)
        current = counts.get(pair, 0)
        if current != -neg_count:  # stale entry: the pair lost occurrences since it was pushed
            if current > 0:
                heapq.heappush(heap, (-current, a, b))
            continue

        new_id = 256 + len(merges)
        merges.append(Merge(a, b, new_id, current))

        # Rewrite only the words that contain the pair, updating counts word by word.
        fresh: set[Pair] = set()  # pairs containing new_id: brand new, so they go on the heap
        lost: set[Pair] = set()  # pairs that left some word: their count may have reached 0
        for i in where.pop(pair):
            old, freq = words[i], freqs[i]
            new = merge_pair(old, pair, new_id)
            words[i] = new
            old_pairs, new_pairs = list(pairwise(old)), list(pairwise(new))
            for p in old_pairs:
                counts[p] -= freq
            for p in new_pairs:
                counts[p] += freq
            old_set, new_set = set(old_pairs), set(new_pairs)
            for p in old_set - new_set:
                lost.add(p)
                if p != pair:
                    where[p].discard(i)
            for p in new_set - old_set:
                where[p].add(i)
                if new_id in p:
                    fresh.add(p)

        # Forget pairs that no longer occur anywhere (the merged pair always among them).
        for p in lost:
            if counts[p] == 0:
                del counts[p]
                where.pop(p, None)
        for p in fresh:
            heapq.heappush(heap, (-counts[p], p[0], p[1]))
    return merges
