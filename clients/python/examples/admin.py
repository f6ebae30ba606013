"""AdminService: a token for a customer-service agent, what that agent sees, the audit log.

Run with an admin token: ``python admin.py`` (see stock.py for the address and token).
"""

from __future__ import annotations

import os
import uuid

from orderhub import OrderHubClient, PermissionDenied, read_token


def main(address: str, token: str) -> None:
    agent = f"cs:{uuid.uuid4().hex[:6]}"
    with OrderHubClient(address, token=token) as admin:
        issued = admin.create_token("cs_agent", agent, ttl_seconds=8 * 3600, note="one shift")
        print(f"token {issued.info.token_id} for {issued.info.subject}, role {issued.info.role}")

        with OrderHubClient(address, token=issued.token) as desk:
            try:
                desk.set_stock("WH-EAST", "TEE-01-BLK-L", 1)
            except PermissionDenied as refused:
                print(f"customer service may not count stock: {refused.message}")

        for event in admin.audit_events(target_prefix=f"token:{issued.info.token_id}"):
            print(f"audit: {event.action} by {event.actor} at {event.at.ToDatetime():%H:%M:%S}")
        admin.revoke_token(issued.info.token_id, reason="shift over")
        active = {t.token_id for t in admin.list_tokens(role="cs_agent")}
        print(f"still active: {issued.info.token_id in active}")


if __name__ == "__main__":
    main(os.environ.get("ORDERHUB_ADDR", "127.0.0.1:50051"), read_token() or "")
