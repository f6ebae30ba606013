"""WmsService: where the warehouse sync stands, and its dead letters.

A WMS publishes its stock events to NATS (``wms.events.<warehouse>``, see docs/wms-sync.md);
this is the view an operator or the WMS team reads back. Run: ``python wms.py``.
"""

from __future__ import annotations

import os

from orderhub import OrderHubClient, read_token


def main(address: str, token: str) -> None:
    with OrderHubClient(address, token=token) as hub:
        status = hub.sync_status()
        print(
            f"applied {status.applied}, duplicates {status.duplicates}, "
            f"dead letters {status.dead_lettered}"
        )
        page = hub.list_dead_letters(page_size=10)
        for letter in page.dead_letters:
            print(f"  #{letter.letter_id} {letter.error}: {letter.reason}")


if __name__ == "__main__":
    main(os.environ.get("ORDERHUB_ADDR", "127.0.0.1:50051"), read_token() or "")
