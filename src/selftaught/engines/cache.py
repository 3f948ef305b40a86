"""An on-disk cache of remote generation requests, so an interrupted job resumes without paying twice.

One sqlite3 file (stdlib, transactional: a crash never leaves a half-written entry) maps the hash of
a canonical request to the server's JSON response. Keys are SHA-256 hex digests of the request
serialised with sorted keys and no whitespace, so the same request always gets the same key
whatever order its fields were built in. Values are JSON text; nothing is pickled.

The request hashed is whatever the caller passes (for `OpenAIEngine`: endpoint, body with model,
prompt and sampling, and the sample index). Credentials are never part of it, and the cache stores
only digests of requests, never the requests themselves.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any


def request_key(request: dict[str, Any]) -> str:
    """SHA-256 hex digest of `request` as canonical JSON (sorted keys, compact, UTF-8)."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class RequestCache:
    """Request key -> response (a JSON object) in one sqlite3 file.

    Safe for concurrent use by threads and coroutines of one process (one connection behind a lock);
    every `put` commits, so what was stored survives a kill. Several processes may share the file
    too (sqlite's own locking, WAL journal), e.g. data-parallel generation workers.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
        with self._lock, self._db:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, response TEXT NOT NULL)"
            )

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored response for `key`, or None when there is none."""
        with self._lock:
            row = self._db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, response: dict[str, Any]) -> None:
        """Store `response` under `key` and commit; the first response stored for a key is kept."""
        text = json.dumps(response, ensure_ascii=False)
        with self._lock, self._db:
            self._db.execute("INSERT OR IGNORE INTO responses (key, response) VALUES (?, ?)", (key, text))

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
