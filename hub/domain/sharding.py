"""Which inventory shard owns a SKU: a stable hash, the same in every process."""

from __future__ import annotations

import hashlib


def shard_of(sku: str, shard_count: int) -> int:
    """Return the index of the shard that owns ``sku`` among ``shard_count`` shards."""
    if shard_count < 1:
        raise ValueError("shard_count must be at least 1")
    digest = hashlib.blake2b(sku.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shard_count
