"""A BM25 index over passages, with the `bm25s` package (the `rag` extra: pip install 'selftaught[rag]').

    index = BM25Index.build([{"id": "p0", "text": "Ada Lovelace wrote the first program."}, ...])
    hits = index.search(["who wrote the first program?"], k=4)   # [[Hit(id, score, rank), ...]]
    index.save("runs/bm25"); BM25Index.load("runs/bm25")

Scoring is bm25s's default (Lucene BM25, k1 = 1.5, b = 0.75). Text is tokenised by bm25s's own
tokenizer, lower-cased, with two choices that differ from its defaults:
- stopwords are **off** by default (`stopwords=None`): in short synthetic text (the tiny world) the
  words "who", "is", "of" can be all that tells two passages apart, and BM25's IDF already gives very
  common words little weight; pass `stopwords="en"` (or a list of words) for natural-language corpora;
- single-character tokens are kept (token pattern `\\b\\w+\\b` rather than bm25s's `\\b\\w\\w+\\b`),
  so a fact whose value is a digit or a letter ("x is 7") can be matched.
No stemming. Scores of every passage are computed per query and the top k taken with ties in passage
order, so results never depend on bm25s's partial sort.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from selftaught.retrieval.base import (
    PROGRESS_MIN_TEXTS,
    Hit,
    check_k,
    check_passages,
    check_queries,
    hits_from,
    load_passages,
    prepare_dir,
    read_manifest,
    save_passages,
    top_k_indices,
    write_manifest,
)

TOKEN_PATTERN = r"(?u)\b\w+\b"
"""Runs of word characters, single characters included (bm25s's default drops them)."""
BM25S_DIR = "bm25s"
"""Subdirectory of a saved index holding bm25s's own files."""


def import_bm25s() -> Any:
    """The `bm25s` module, or an ImportError that says how to install it."""
    try:
        import bm25s
    except ImportError as err:
        raise ImportError("BM25 retrieval needs bm25s: pip install 'selftaught[rag]'") from err
    return bm25s


class BM25Index:
    """BM25 over a fixed list of passages; build with `BM25Index.build`, or `BM25Index.load` a saved one."""

    def __init__(self, passages: list[dict[str, Any]], model: Any, stopwords: str | list[str] | None) -> None:
        """Use `build` or `load`; `model` is a `bm25s.BM25` indexed over `passages` in order."""
        self.passages = passages
        self.ids = [passage["id"] for passage in passages]
        self.model = model
        self.stopwords = stopwords

    @classmethod
    def build(
        cls, passages: Sequence[dict[str, Any]], *, stopwords: str | list[str] | None = None
    ) -> BM25Index:
        """Index `passages` (records with unique string `id` and string `text`).

        `stopwords`: None (default) keeps every word; "en" or a list of words drops them from passages
        and queries alike (see the module docstring for why the default is None).
        """
        passages = check_passages(passages)
        model = import_bm25s().BM25()
        tokens = tokenize([passage["text"] for passage in passages], stopwords)
        model.index(tokens, show_progress=len(passages) >= PROGRESS_MIN_TEXTS)
        return cls(passages, model, stopwords)

    def search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        """The `k` best passages of each query, best first; equal scores in passage order.

        A query with no word in the index's vocabulary scores 0 everywhere and gets the first `k`
        passages. `k` must be in [1, number of passages].
        """
        queries = check_queries(queries)
        check_k(k, len(self.passages))
        results = []
        for tokens in tqdm(
            tokenize(queries, self.stopwords), desc="bm25 search", disable=len(queries) < PROGRESS_MIN_TEXTS
        ):
            scores = self._scores(tokens)
            positions = top_k_indices(scores, k)
            results.append(hits_from(self.ids, positions, scores[positions]))
        return results

    def _scores(self, tokens: list[str]) -> np.ndarray:
        """BM25 scores [N] of every passage for one tokenised query."""
        token_ids = self.model.get_tokens_ids(tokens)
        if not token_ids:
            return np.zeros(len(self.passages), dtype=np.float32)
        return self.model.get_scores_from_ids(token_ids)

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write the index to `directory`: bm25s's files under `bm25s/`, `passages.jsonl`, then the manifest."""
        path = prepare_dir(directory)
        self.model.save(str(path / BM25S_DIR), show_progress=False)
        save_passages(path, self.passages)
        write_manifest(
            path,
            "bm25",
            num_passages=len(self.passages),
            stopwords=self.stopwords,
            token_pattern=TOKEN_PATTERN,
        )

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> BM25Index:
        """An index saved by `save`."""
        path, manifest = read_manifest(directory, "bm25")
        if manifest.get("token_pattern") != TOKEN_PATTERN:
            raise ValueError(
                f"{path}: saved with token pattern {manifest.get('token_pattern')!r}, this selftaught "
                f"tokenises with {TOKEN_PATTERN!r}; rebuild the index"
            )
        passages = load_passages(path)
        model = import_bm25s().BM25.load(str(path / BM25S_DIR), show_progress=False)
        if model.scores["num_docs"] != len(passages) or manifest["num_passages"] != len(passages):
            raise ValueError(
                f"{path}: the bm25s index has {model.scores['num_docs']} documents, passages.jsonl "
                f"{len(passages)} and the manifest {manifest['num_passages']}: the directory is inconsistent"
            )
        return cls(passages, model, manifest["stopwords"])


def tokenize(texts: list[str], stopwords: str | list[str] | None) -> list[list[str]]:
    """bm25s's tokenizer, lower-cased, single characters kept, `stopwords` removed (None: none)."""
    return import_bm25s().tokenize(
        texts,
        lower=True,
        token_pattern=TOKEN_PATTERN,
        stopwords=stopwords,
        return_ids=False,
        show_progress=False,
    )
