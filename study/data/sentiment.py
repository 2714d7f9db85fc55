"""The embedded text benchmark, ``vader-sentiment``: sentences whose sentiment words and labels come from real human
ratings, with a shift of vocabulary and of register.

VADER's lexicon (Hutto & Gilbert 2014, MIT licence; the file ``vader_lexicon.txt`` that the ``vaderSentiment``
package ships) rates 7,520 English tokens, each by ten human raters on a -4 (most negative) ... +4 scale. Its
dictionary words (the longest run of plain lowercase words in the file, after its emoticons and slang acronyms)
whose raters agree (a mean of at least 1 in size, and at least 8 of the 10 ratings of its sign) are the
vocabulary; a word's label is the sign of its mean: ``negative`` or ``positive``.

A sentence is a template of one register with a sentiment word in its slot and a topic noun in another:

- **ID** (train, val, test): review-register templates ("My verdict on the hotel is simple: wonderful.") with the
  ID vocabulary, a small set of words per class, so the head sees each one a few times in training;
- **OOD** ``unseen_words``: the same register with held-out words, words the encoder met in its pretraining but
  the head never saw (words sharing their first five letters stay on one side, so ``abandon`` does not leak
  ``abandoned``);
- **OOD** ``chat``: held-out words in another register, chat-style templates with other topics
  ("ngl that concert was wonderful !!").

Every OOD domain has a ``_val`` part (for the oracle only) and a ``_test`` part. The sentences are drawn by a
generator seeded by ``seed`` (deterministic), and cached under the lexicon's hash and the recipe.
"""
from __future__ import annotations

import ast
import hashlib
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from study.cache import cache_root, cached, content_hash
from study.data.benchmark import ID_TEST, ID_VAL, TRAIN, Benchmark, Sentences
from study.data.files import DataError
from study.data.registry import register_benchmark
from study.packaged import packaged_file

CLASSES = ("negative", "positive")
DICTIONARY_START = "abandon"  # the lexicon's first dictionary word; before it: emoticons and slang acronyms
# The templates' own words carry no sentiment in the lexicon (none is rated), so a sentence's label is its word's.
REVIEW = ("One word for the {topic}: {word}.", "The {topic}? {word}, if you ask me.",
          "I would sum up the {topic} as {word}.", "Review of the {topic}: {word}.",
          "My take on the {topic} is simple: {word}.", "The {topic} made me think: {word}.")
REVIEW_TOPICS = ("hotel", "room", "service", "phone", "battery", "movie", "restaurant", "meal", "staff", "screen")
CHAT = ("omg the {topic} is just {word}", "{word} {topic} tbh", "ngl that {topic} was {word} !!",
        "{topic} = {word} #mood", "so {word}... that {topic} tho", "bruh {topic} today? {word}")
CHAT_TOPICS = ("game", "meeting", "class", "bus", "weather", "concert", "date", "gym")
GENERATOR = 2  # the version of this file's sentence drawing: part of the cache key


@dataclass(frozen=True)
class SentimentRecipe:
    """How the benchmark is drawn: the vocabulary's agreement filter, its ID words, the split sizes, the seed."""

    min_mean: float = 1.0
    min_agreeing: int = 8
    id_words_per_class: int = 150
    train: int = 400
    id_val: int = 100
    id_test: int = 200
    ood_val: int = 60
    ood_test: int = 150
    seed: int = 0


def lexicon_file() -> Path:
    """VADER's lexicon file, in the installed ``vaderSentiment`` package."""
    return packaged_file("vaderSentiment", "vader_lexicon.txt", distribution="vaderSentiment", error=DataError,
                         needed_by="the vader-sentiment benchmark reads VADER's lexicon from the vaderSentiment "
                                   "package")


def read_lexicon(path: Path) -> list[tuple[str, float, list[int]]]:
    """(token, mean rating, the ten ratings) per line; a damaged line is one error naming the file and line."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            token, mean, _, ratings = line.split("\t")
            rows.append((token, float(mean), [int(r) for r in ast.literal_eval(ratings)]))
        except (ValueError, SyntaxError):
            raise DataError(f"{path}:{number}: not a VADER lexicon line (token, mean, std, [ten ratings]); the file "
                            "is damaged: pip install --force-reinstall vaderSentiment") from None
    return rows


def vocabulary(rows: list[tuple[str, float, list[int]]], recipe: SentimentRecipe) -> dict[str, int]:
    """The dictionary words the raters agree on, each with its label (0 negative, 1 positive)."""
    start = next((index for index, row in enumerate(rows) if row[0] == DICTIONARY_START), None)
    if start is None:
        raise DataError(f"VADER's lexicon has no {DICTIONARY_START!r}, where its dictionary words begin: it is not "
                        "vaderSentiment 3.3's file; pip install --force-reinstall vaderSentiment==3.3.2")
    words = {}
    for token, mean, ratings in rows[start:]:
        if not (token.isalpha() and token.islower()):
            continue
        agreeing = sum(1 for r in ratings if r != 0 and (r > 0) == (mean > 0))
        if abs(mean) >= recipe.min_mean and agreeing >= recipe.min_agreeing:
            words[token] = int(mean > 0)
    return words


def split_vocabulary(words: dict[str, int], recipe: SentimentRecipe) -> tuple[dict, dict]:
    """(ID words, held-out words): word families (words sharing their first five letters) in the order of a hash
    of the family, to ID until each class has ``id_words_per_class`` words, the rest held out; so the split depends
    on the words alone."""
    families: dict[str, list[str]] = {}
    for word in sorted(words):
        families.setdefault(word[:5], []).append(word)
    seen, held, counts = {}, {}, [0, 0]
    for family in sorted(families, key=lambda key: hashlib.sha256(key.encode()).hexdigest()):
        members = {word: words[word] for word in families[family]}
        if counts[words[families[family][0]]] < recipe.id_words_per_class:
            seen.update(members)
            for label in members.values():
                counts[label] += 1
        else:
            held.update(members)
    return seen, held


def draw(words: dict[str, int], templates, topics, count: int, rng: random.Random) -> dict:
    """``count`` sentences, half of each label, in a shuffled order."""
    by_label = {label: sorted(w for w, y in words.items() if y == label) for label in (0, 1)}
    labels = [index % 2 for index in range(count)]
    rng.shuffle(labels)
    texts = [rng.choice(templates).format(topic=rng.choice(topics), word=rng.choice(by_label[y])) for y in labels]
    return {"texts": texts, "labels": labels}


def generate(recipe: SentimentRecipe, rows) -> dict[str, dict]:
    """Every split's sentences and labels."""
    seen, held = split_vocabulary(vocabulary(rows, recipe), recipe)
    rng = random.Random(recipe.seed)
    splits = {name: draw(seen, REVIEW, REVIEW_TOPICS, size, rng)
              for name, size in ((TRAIN, recipe.train), (ID_VAL, recipe.id_val), (ID_TEST, recipe.id_test))}
    for domain, templates, topics in (("unseen_words", REVIEW, REVIEW_TOPICS), ("chat", CHAT, CHAT_TOPICS)):
        for part, size in (("val", recipe.ood_val), ("test", recipe.ood_test)):
            splits[f"{domain}_{part}"] = draw(held, templates, topics, size, rng)
    return splits


@register_benchmark("vader-sentiment", holds_text=True)
def vader_sentiment(*, cache_dir=None, **recipe_options) -> Benchmark:
    """Sentiment of template sentences, ID review register with seen words → unseen words, and chat register."""
    recipe = SentimentRecipe(**recipe_options)
    path = lexicon_file()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    fingerprint = content_hash("vader-sentiment", GENERATOR, digest, asdict(recipe))
    data = cached(cache_root(cache_dir) / "benchmarks" / f"vader-sentiment-{fingerprint}.pt",
                  lambda: generate(recipe, read_lexicon(path)))
    splits = {name: Sentences(split["texts"], torch.tensor(split["labels"])) for name, split in data.items()}
    return Benchmark(name="vader-sentiment", classes=CLASSES, ood_domains=("unseen_words", "chat"), splits=splits,
                     fingerprint=fingerprint, source=str(path))
