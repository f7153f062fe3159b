"""The datasets we know by name: where they live and the checksums that pin them.

A dataset has one or more *variants*, each a set of files. The first variant is the canonical one;
a later variant is a known, content-equivalent repackaging that only a mirror (PIPELINE_DATA_MIRROR)
serves. Sources: each folder's PROVENANCE.md in the shared data (checksums), and the Keras source
(Reuters).
"""
from __future__ import annotations

from dataclasses import dataclass

KERAS_DATASETS = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"


@dataclass(frozen=True)
class RemoteFile:
    name: str                      # file name in data/raw/<dataset>/ and in a mirror's <dataset>/ folder
    checksum: str                  # "sha256:…", "md5:…" or "git-blob:…"
    urls: tuple[str, ...] = ()     # canonical hosts, tried in order; empty: mirror only
    size: int | None = None


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    variants: tuple[tuple[RemoteFile, ...], ...]
    official_test: bool            # ships its own test split


SEOUL120 = DatasetSpec(
    name="seoul120",
    description="Seoul 120 Dasan call-center Q&A (2,645 rows, 10 classes; label 분류, text 제목 + 내용)",
    variants=((
        RemoteFile(
            name="seoul-120-text.csv",
            checksum="sha256:69973f7a1dc6cb52820f555e8f978916ad123dd7772191716afe625506956bb3",
            urls=(
                # Pinned commit of the book's companion repo (the file bit.ly/seoul-120-text-csv serves).
                "https://raw.githubusercontent.com/pytextbook/pytextbook/"
                "c7e35b2a7f4a5b2fce04992971d9844f6e04f151/data/seoul-120-text.csv",
                "https://bit.ly/seoul-120-text-csv",
            ),
            size=2_157_900,
        ),
    ),),
    official_test=False,
)

_NSMC_BASE = "https://raw.githubusercontent.com/e9t/nsmc/cc0670e872d4ac27bfe36c87456783004b39ef6c/"
NSMC = DatasetSpec(
    name="nsmc",
    description="Naver Sentiment Movie Corpus v1.0 (150,000 train + 50,000 test reviews, binary)",
    variants=((
        RemoteFile("ratings_train.txt", "git-blob:ac0dba272895dc1d0b3dd5f11afbeaeb7abe7876",
                   (_NSMC_BASE + "ratings_train.txt",)),
        RemoteFile("ratings_test.txt",
                   "sha256:8ac9f64052f11dbf6ae0acb5e038f03d90a76f0eda7820cfb3a92d02edfcebda",
                   (_NSMC_BASE + "ratings_test.txt",)),
    ),),
    official_test=True,
)

IMDB = DatasetSpec(
    name="imdb",
    description="Large Movie Review Dataset v1.0 (aclImdb: 25,000 train + 25,000 test reviews, binary)",
    variants=(
        (RemoteFile("aclImdb_v1.tar.gz", "md5:7c2ac02c03563afcf9b574c7e56c153a",
                    ("https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",),
                    size=84_125_825),),
        # The same 50,000 reviews repackaged (no unsup folder, no .feat files): mirrors only.
        (RemoteFile("aclImdb_train_test.tar.gz",
                    "sha256:41e4a833c88260a3983fd80c72e6d27ca281c100c21ba30a299d54e5541a563b",
                    size=28_541_990),),
    ),
    official_test=True,
)

REUTERS = DatasetSpec(
    name="reuters",
    description="Reuters newswire topics, Keras format (11,228 newswires, 46 topics)",
    variants=((
        RemoteFile("reuters.npz",
                   "sha256:d6586e694ee56d7a4e65172e12b3e987c03096cb01eab99753921ef915959916",
                   (KERAS_DATASETS + "reuters.npz",), size=2_110_848),
        RemoteFile("reuters_word_index.json", "md5:4d44cc38712099c9e383dc6e5f11a921",
                   (KERAS_DATASETS + "reuters_word_index.json",)),
    ),),
    official_test=True,
)

KNOWN = {spec.name: spec for spec in (SEOUL120, NSMC, IMDB, REUTERS)}
