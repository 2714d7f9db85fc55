"""Human-written sentences from four domains, each rated by people: ``sentiment-domains`` (sized for a CPU) and
``sentiment-domains-full`` (all of it).

Hutto & Gilbert's ground truth for VADER (ICWSM 2014; MIT licence): every sentence's sentiment is the mean of at
least 20 human ratings on a -4 (most negative) ... +4 scale. Four files of tab-separated ``id, mean rating, text``:

- **ID** ``movies``: 10,605 movie-review snippets (from Pang & Lee's sentence polarity data);
- **OOD** ``amazon``: 3,708 product-review snippets (from Hu & Liu), ``tweets``: 4,200 tweets, ``nyt``: 5,190
  snippets of New York Times opinion pieces.

**Labels**: ``positive`` where the mean rating is at least +0.5, ``negative`` where it is at most -0.5; sentences
the raters judged neutral (in between) are left out. That keeps movies 4,996 / 5,076 (positive / negative),
amazon 1,750 / 1,235, tweets 2,345 / 1,087, nyt 1,187 / 1,783. ``sentiment-domains`` draws the same number of
each label into every split, so 50 % is chance everywhere and a domain's accuracy does not depend on its label
balance; ``sentiment-domains-full`` keeps every sentence, in its domain's own balance. HTML entities in the
tweets (``&amp;``) are unescaped; the text is otherwise as written.

**Where the files come from.** They are not in the ``vaderSentiment`` wheel, only in its *source* archive on PyPI,
``vaderSentiment-3.3.2.tar.gz``, as ``additional_resources/hutto_ICWSM_2014.tar.gz``. At first use the archive is
fetched through the package index (``pip download --no-deps --no-binary :all: vaderSentiment==3.3.2``), both
archives' SHA-256 checked against the hashes pinned here, and the four files extracted into the cache; later
studies read the cache. Offline, ``data_root`` (``--data-root``) may hold that archive, or the extracted
``hutto_ICWSM_2014/`` folder. The splits are drawn by a generator seeded by ``seed`` and cached.
"""
from __future__ import annotations

import html
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock

from study.cache import cache_root, cached, content_hash
from study.data.benchmark import ID_TEST, ID_VAL, TRAIN, Benchmark, Sentences
from study.data.digits import draw_per_class
from study.data.files import ENV_VAR, DataError
from study.data.registry import register_benchmark
from study.packaged import sha256

CLASSES = ("negative", "positive")
RELEASE = "vaderSentiment==3.3.2"
ARCHIVE = ("vaderSentiment-3.3.2.tar.gz", "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9")
INNER = ("hutto_ICWSM_2014.tar.gz", "d5bb07d87474b3eb8d30b4deccbc23f19d742a6c5718fbacc65485b70b95c5fa")
FOLDER = "hutto_ICWSM_2014"
FILES = {"movies": "movieReviewSnippets_GroundTruth.txt", "amazon": "amazonReviewSnippets_GroundTruth.txt",
         "tweets": "tweets_GroundTruth.txt", "nyt": "nytEditorialSnippets_GroundTruth.txt"}
ID_DOMAIN, OOD_DOMAINS = "movies", ("amazon", "tweets", "nyt")
FETCH = f"pip download --no-deps --no-binary :all: {RELEASE}"
GENERATOR = 1  # the version of this file's reading and drawing: part of the cache key


@dataclass(frozen=True)
class DomainsRecipe:
    """How the benchmark is drawn: the label threshold and the sentences per label of each split (None: all that
    are left, in the domain's own balance; an OOD ``val`` of None: half of each label)."""

    threshold: float = 0.5
    train_per_class: int | None = 80
    val_per_class: int | None = 40
    test_per_class: int | None = 80
    ood_val_per_class: int | None = 20
    ood_test_per_class: int | None = 40
    seed: int = 0


FULL = DomainsRecipe(train_per_class=3500, val_per_class=500, test_per_class=None, ood_val_per_class=None,
                     ood_test_per_class=None)


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in FILES.values())


def corpus_folder(data_root=None, cache_dir=None) -> Path:
    """The folder holding the four ground-truth files: ``data_root``'s copy (the extracted folder, or the source
    archive, extracted into the cache), else the cache's, else fetched through the package index into it."""
    root = data_root or os.environ.get(ENV_VAR)
    if root:
        root = Path(root).expanduser()
        for folder in (root / FOLDER, root):
            if _complete(folder):
                return folder
        if (root / ARCHIVE[0]).is_file():
            return _extracted(root / ARCHIVE[0], cache_dir)
    target = _extraction(cache_dir)
    if _complete(target):
        return target
    archive = cached_archive(cache_dir)
    with FileLock(str(archive) + ".lock"):
        if not archive.is_file():
            _fetch(archive, root)
    return _extracted(archive, cache_dir)


def cached_archive(cache_dir=None) -> Path:
    """Where the source archive fetched through the package index is kept (the provenance of the extracted files)."""
    folder = cache_root(cache_dir) / "datasets"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / ARCHIVE[0]


def _extraction(cache_dir) -> Path:
    return cache_root(cache_dir) / "datasets" / f"{FOLDER}-{INNER[1][:12]}"


def _extracted(archive: Path, cache_dir) -> Path:
    target = _extraction(cache_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not _complete(target):
            _extract(archive, target)
    return target


def _fetch(archive: Path, data_root) -> None:
    """The pinned source archive, downloaded by pip to ``archive``; one line if the index cannot be reached."""
    with tempfile.TemporaryDirectory(dir=archive.parent) as staging:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                   "--disable-pip-version-check", "--dest", staging, RELEASE]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=300)
            failure = done.stderr.strip().splitlines()[-1] if done.returncode else None
        except (OSError, subprocess.SubprocessError) as error:
            failure = str(error)
        fetched = Path(staging) / ARCHIVE[0]
        if failure or not fetched.is_file():
            where = f"{data_root} holds neither {FOLDER}/ nor {ARCHIVE[0]}, and " if data_root else ""
            raise DataError(f"the sentiment-domains sentences are not in the cache; {where}pip could not fetch them "
                            f"({(failure or 'no archive')[:160]}): connect to the package index once (they are then "
                            f"cached), or pass --data-root DIR holding {ARCHIVE[0]} (`{FETCH} -d DIR` on a machine "
                            f"online) or the extracted {FOLDER}/ folder")
        _check_hash(fetched, ARCHIVE[1])
        os.replace(fetched, archive)


def _extract(archive: Path, target: Path) -> None:
    """The four files (and the README) out of the source archive's inner archive, both hashes checked."""
    _check_hash(archive, ARCHIVE[1])
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".icwsm-"))
    try:
        with tarfile.open(archive) as outer:
            member = next((m for m in outer.getmembers() if m.name.endswith(f"additional_resources/{INNER[0]}")),
                          None)
            if member is None:
                raise DataError(f"{archive}: holds no additional_resources/{INNER[0]}; get a fresh copy: {FETCH}")
            outer.extract(member, staging, filter="data")
        inner = staging / member.name
        _check_hash(inner, INNER[1], archive)
        with tarfile.open(inner) as opened:
            wanted = [m for m in opened.getmembers() if Path(m.name).name in {*FILES.values(), "_README_.txt"}]
            opened.extractall(staging, members=wanted, filter="data")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging / FOLDER, target)
    except (tarfile.TarError, OSError, EOFError) as error:
        raise DataError(f"{archive}: not a readable source archive ({type(error).__name__}: {error}); get a fresh "
                        f"copy: {FETCH}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_hash(path: Path, expected: str, within: Path | None = None) -> None:
    if (found := sha256(path)) != expected:
        what = f"{path.name} inside {within}" if within else str(path)
        raise DataError(f"{what}: SHA-256 {found[:16]}..., expected {expected[:16]}...: damaged or not "
                        f"{RELEASE}'s source archive; delete it and get a fresh copy: {FETCH}")


def read_domain(path: Path) -> tuple[list[str], list[float]]:
    """(sentences, mean ratings) of one ground-truth file; a line that is not ``id<TAB>rating<TAB>text`` in UTF-8
    is one error naming the file and the line."""
    texts, ratings = [], []
    with open(path, "rb") as opened:
        for number, raw in enumerate(opened, start=1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as error:
                raise DataError(f"{path}:{number}: not UTF-8 ({error.reason} at byte {error.start}); the file is "
                                f"damaged: delete {path.parent} and it is extracted again") from None
            if not line.strip():
                continue
            fields = line.split("\t")
            try:
                rating = float(fields[1])
                if len(fields) != 3:
                    raise ValueError
            except (ValueError, IndexError):
                raise DataError(f"{path}:{number}: not `id<TAB>mean rating<TAB>text`; the file is damaged: delete "
                                f"{path.parent} and it is extracted again") from None
            texts.append(html.unescape(fields[2]).strip())
            ratings.append(rating)
    return texts, ratings


def labelled(texts: list[str], ratings: list[float], threshold: float) -> tuple[list[str], list[int]]:
    """The sentences rated at least ``threshold`` away from neutral, labelled 1 (positive) or 0 (negative)."""
    kept = [(text, int(rating > 0)) for text, rating in zip(texts, ratings) if abs(rating) >= threshold]
    return [text for text, _ in kept], [label for _, label in kept]


def generate(folder: Path, recipe: DomainsRecipe) -> dict[str, dict]:
    """Every split's sentences and labels, in a shuffled order."""
    generator = torch.Generator().manual_seed(recipe.seed)
    plan = {}
    for domain, names, counts in (
            (ID_DOMAIN, (TRAIN, ID_VAL, ID_TEST), [recipe.train_per_class, recipe.val_per_class, recipe.test_per_class]),
            *((domain, (f"{domain}_val", f"{domain}_test"), [recipe.ood_val_per_class, recipe.ood_test_per_class])
              for domain in OOD_DOMAINS)):
        texts, labels = labelled(*read_domain(folder / FILES[domain]), recipe.threshold)
        for name, indices in zip(names, draw_per_class(np.asarray(labels), counts, generator)):
            order = indices[torch.randperm(len(indices), generator=generator).numpy()]
            plan[name] = {"texts": [texts[i] for i in order], "labels": [labels[i] for i in order]}
    return plan


def domains_benchmark(name: str, recipe: DomainsRecipe, cache_dir=None, data_root=None) -> Benchmark:
    folder = corpus_folder(data_root, cache_dir)
    digests = [sha256(folder / FILES[domain])[:16] for domain in FILES]
    fingerprint = content_hash(name, GENERATOR, digests, asdict(recipe))
    data = cached(cache_root(cache_dir) / "benchmarks" / f"{name}-{fingerprint}.pt", lambda: generate(folder, recipe))
    splits = {split: Sentences(value["texts"], torch.tensor(value["labels"])) for split, value in data.items()}
    return Benchmark(name=name, classes=CLASSES, ood_domains=OOD_DOMAINS, splits=splits, fingerprint=fingerprint,
                     source=str(folder))


@register_benchmark("sentiment-domains", holds_text=True)
def sentiment_domains(*, cache_dir=None, data_root=None) -> Benchmark:
    """Movie reviews (ID: 80 train, 40 val, 80 test per label) → Amazon reviews, tweets, NYT opinion (OOD: 20 val,
    40 test per label each)."""
    return domains_benchmark("sentiment-domains", DomainsRecipe(), cache_dir, data_root)


@register_benchmark("sentiment-domains-full", holds_text=True)
def sentiment_domains_full(*, cache_dir=None, data_root=None) -> Benchmark:
    """Every rated sentence: movies 3,500 train and 500 val per label, the rest test; each OOD domain halved into
    val and test."""
    return domains_benchmark("sentiment-domains-full", FULL, cache_dir, data_root)
