"""Pseudo-relevance feedback for phase 1 of recall: a second round with the best turns' words.

A question rarely uses the words its answer was told in ("Who plays the drums in Jonas's
group?" / "Your drummer though..." / "Felix is a menace."). The turns the question does match
talk about the same thing, so their other words are likely to be near the answer too. This is
RM3 (Lavrenko & Croft 2001; Abdul-Jaleel et al. 2004) over the first round's candidates:

- feedback turns are the top :data:`FEEDBACK_DOCS` that share a word with the question (one
  found only by its neighbours' words or its speaker's name says nothing of the topic);
- a word's weight is ``sum over them of P(t | d) * P(d | q)``: its share of the turn's words
  times the turn's share of their BM25;
- the best :data:`FEEDBACK_TERMS` words the question does not hold make one more BM25 query
  (one extra FTS statement per recall), and a turn scores ``bm25(question) +
  FEEDBACK_WEIGHT * bm25(feedback)``: RM3's linear mix of the two query models, on BM25's own
  scale, whose idf discounts the words the owner says all the time.

RM3's customary settings (10 turns, 10 terms, equal mix), not fitted to our data. Weighting the
words by the owner's idf as well (one more statement counting them) recalled a little more in
bench/recall.py but cost ~0.8 ms more per recall; left out. Every term is quoted (:func:`quote`),
so nothing from a turn's text is read as FTS5 syntax.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import TypeVar

T = TypeVar("T")

FEEDBACK_DOCS = 10
FEEDBACK_TERMS = 10  # 0 turns feedback off (bench/recall.py --no-feedback)
FEEDBACK_WEIGHT = 0.5
MIN_LENGTH = 3  # shorter words are mostly function words and pieces of numbers
_WORD = re.compile(r"\w+")


def quote(term: str) -> str:
    """``term`` as one FTS5 string: inside double quotes, a quote doubled."""
    return '"' + term.replace('"', '""') + '"'


def words(text: str, stop_words: frozenset[str]) -> list[str]:
    """The lower-cased words of ``text`` worth a term: not stop words, numbers or short."""
    out = []
    for match in _WORD.finditer(text):
        word = match.group().lower().strip("_")
        if len(word) >= MIN_LENGTH and not word.isdigit() and word not in stop_words:
            out.append(word)
    return out


def _stem(word: str) -> str:
    # Only to tell the question's word from its plural or possessive in a turn; the index's
    # porter stemmer does the matching itself.
    return word[:-1] if word.endswith("s") and len(word) > MIN_LENGTH else word


def feedback_terms(
    question: str, scored: str, top: Sequence[tuple[str, float]], stop_words: frozenset[str]
) -> list[str]:
    """The quoted feedback terms for ``question``, best first, from its first-round turns
    ``top`` (text, BM25 score: higher is better, best first); empty when none qualifies.

    ``scored`` holds the question's words the first round scored (phase 1 leaves out those most
    of the owner's episodes hold): a feedback turn must say one of them, so a turn found by a
    word too common to score brings no feedback, and neither do such words' neighbours."""
    if FEEDBACK_TERMS <= 0:
        return []
    asked = {_stem(w) for w in words(question, stop_words)}
    wanted = {_stem(w) for w in words(scored, stop_words)}
    feedback = []
    for text, score in top[:FEEDBACK_DOCS]:
        found = words(text, stop_words)
        said = [w for w in found if _stem(w) not in asked]
        if score > 0 and said and wanted.intersection(map(_stem, found)):
            feedback.append((said, score))
    total = sum(score for _, score in feedback)
    weight: defaultdict[str, float] = defaultdict(float)
    for said, score in feedback:
        for word, count in Counter(said).items():
            weight[word] += count / len(said) * score / total
    ranked = sorted(weight, key=lambda w: (-weight[w], w))[:FEEDBACK_TERMS]
    return [quote(w) for w in ranked]


def mix(
    first: Iterable[tuple[T, int, float]], second: Iterable[tuple[T, int, float]], weight: float | None = None
) -> list[tuple[T, float]]:
    """``first``'s and ``second``'s items (item, id, score), each scored ``first + weight *
    second`` (0 where a round did not find it; default :data:`FEEDBACK_WEIGHT`), best first,
    ties to the higher id."""
    weight = FEEDBACK_WEIGHT if weight is None else weight
    items: dict[int, T] = {}
    scores: defaultdict[int, float] = defaultdict(float)
    for item, key, score in first:
        items[key] = item
        scores[key] += score
    for item, key, score in second:
        items.setdefault(key, item)
        scores[key] += weight * score
    order = sorted(scores, key=lambda key: (-scores[key], -key))
    return [(items[key], scores[key]) for key in order]
