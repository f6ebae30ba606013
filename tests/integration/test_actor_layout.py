"""The shared actors' layout: one set of shards per namespace, serving one database."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
import ray

from actors.inventory import start_shards
from actors.lanes import start_lane_shards
from actors.layout import LayoutMismatch, database_fingerprint, running_counts


def test_a_second_layout_or_another_database_is_refused(
    ray_session: None, new_database: Callable[[str], str]
) -> None:
    url, other = new_database("sqlite"), new_database("sqlite")
    namespace = f"layout-{uuid.uuid4().hex[:8]}"
    handles = start_shards(2, url, namespace=namespace)
    lanes = start_lane_shards(1, url, namespace=namespace)
    try:
        assert running_counts("orderhub-inventory", namespace) == {2}
        # Another hub of the same deployment finds the same actors.
        again = start_shards(2, url, namespace=namespace)
        assert [h._actor_id for h in again] == [h._actor_id for h in handles]
        with pytest.raises(LayoutMismatch, match="already runs 2 orderhub-inventory"):
            start_shards(3, url, namespace=namespace)
        with pytest.raises(LayoutMismatch, match="another database"):
            start_shards(2, other, namespace=namespace)
        with pytest.raises(LayoutMismatch, match="another database"):
            start_lane_shards(1, other, namespace=namespace)
        # The refused layout left no actor behind.
        assert running_counts("orderhub-inventory", namespace) == {2}
    finally:
        for h in [*handles, *lanes]:
            ray.kill(h, no_restart=True)


def test_the_fingerprint_hides_the_password_and_tells_databases_apart() -> None:
    a = database_fingerprint("postgresql+psycopg://u:secret@db/orders")
    assert a == database_fingerprint("postgresql+psycopg://u:other@db/orders")
    assert a != database_fingerprint("postgresql+psycopg://u:secret@db/other")
    assert "secret" not in a
