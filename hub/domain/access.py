"""Who may call what, and what each role sees of buyers' personal data. Plain data, no I/O.

Every RPC of OrderHub belongs to exactly the roles listed here; anything not listed is
refused (``PERMISSION_DENIED``), including RPCs added later until someone grants them.
Masking is by the kind of personal data a field holds (the ``sensitivity`` option on the
field in the protos) and the caller's role: shown, masked (``139****5678``) or redacted.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

PACKAGE = "orderhub.v1"

#: The roles a token can carry.
ROLES: tuple[str, ...] = ("admin", "ops", "cs_agent", "cs_lead", "finance", "wms", "integration")

#: What a redacted text field reads.
REDACTED = "***"


class Role(enum.StrEnum):
    ADMIN = "admin"
    OPS = "ops"
    CS_AGENT = "cs_agent"
    CS_LEAD = "cs_lead"
    FINANCE = "finance"
    WMS = "wms"
    INTEGRATION = "integration"


def method(service: str, rpc: str) -> str:
    """The full gRPC method name, as the server sees it: ``/orderhub.v1.StockService/Reserve``."""
    return f"/{PACKAGE}.{service}/{rpc}"


def _methods(service: str, *rpcs: str) -> frozenset[str]:
    return frozenset(method(service, r) for r in rpcs)


# ------------------------------------------------------------------------ the RPCs, grouped

STOCK_READ = _methods(
    "StockService",
    "ListWarehouses",
    "ListCarriers",
    "GetAvailability",
    "GetReservation",
    "WatchAvailability",
    "GetInventoryMap",
)
MASTER_DATA_WRITE = _methods(
    "StockService", "UpsertWarehouse", "UpsertSku", "UpsertCarrier", "MapPlatformSku"
)
STOCK_COUNT = _methods("StockService", "SetStock")
RESERVATIONS = _methods("StockService", "Reserve", "ReserveBatch", "Release", "Commit")
SHIPMENT_REQUEST = _methods("StockService", "RequestShipment")

ORDER_READ = _methods(
    "OrderService", "GetOrder", "ListOrders", "ListOrderEvents", "WatchOrders", "ListShops"
)
ORDER_INGEST = _methods("OrderService", "IngestPlatformOrder", "IngestPlatformOrders")
ORDER_SERVICE = _methods("OrderService", "HoldOrder", "ResumeOrder", "CancelOrder")
ORDER_REVIEW = _methods("OrderService", "ApproveOrder", "RejectOrder")
ORDER_FULFIL = _methods("OrderService", "ShipOrder", "DeliverOrder")

ROUTING_READ = _methods(
    "RoutingService", "GetLaneHealth", "QuoteRoute", "GetRoutingRules", "ListRoutingRuleVersions"
)
ROUTING_RULES_WRITE = _methods("RoutingService", "UpdateRoutingRules")
ROUTE = _methods("RoutingService", "RouteOrder")
LANE_OUTCOME = _methods("RoutingService", "RecordLaneOutcome")

WMS_READ = _methods("WmsService", "ListDeadLetters", "GetSyncStatus")
DEAD_LETTER_WRITE = _methods("WmsService", "ReplayDeadLetters", "DiscardDeadLetters")
RECONCILE = _methods("ReconciliationService", "Reconcile")

TOKENS = _methods("AdminService", "CreateToken", "RevokeToken", "ListTokens")
AUDIT_READ = _methods("AdminService", "ListAuditEvents")

ALL_RPCS: frozenset[str] = frozenset().union(
    STOCK_READ,
    MASTER_DATA_WRITE,
    STOCK_COUNT,
    RESERVATIONS,
    SHIPMENT_REQUEST,
    ORDER_READ,
    ORDER_INGEST,
    ORDER_SERVICE,
    ORDER_REVIEW,
    ORDER_FULFIL,
    ROUTING_READ,
    ROUTING_RULES_WRITE,
    ROUTE,
    LANE_OUTCOME,
    WMS_READ,
    DEAD_LETTER_WRITE,
    RECONCILE,
    TOKENS,
    AUDIT_READ,
)

#: The RPCs that change something. Each call of one is audited, except the machine traffic
#: in :data:`LEDGERED` (see :func:`audited`).
WRITES: frozenset[str] = frozenset().union(
    MASTER_DATA_WRITE,
    STOCK_COUNT,
    RESERVATIONS,
    SHIPMENT_REQUEST,
    ORDER_INGEST,
    ORDER_SERVICE,
    ORDER_REVIEW,
    ORDER_FULFIL,
    ROUTING_RULES_WRITE,
    ROUTE,
    LANE_OUTCOME,
    DEAD_LETTER_WRITE,
    _methods("AdminService", "CreateToken", "RevokeToken"),
)

#: Writes that systems make at volume (a storefront's reservations, a platform's orders, a
#: WMS's commits, a carrier's outcomes). Made with a ``wms`` or ``integration`` token they
#: are recorded in their own append-only ledgers (the stock ledger, order events, lane
#: outcomes) instead of the audit log; made by a person they are audited like any write.
LEDGERED: frozenset[str] = frozenset().union(
    RESERVATIONS, SHIPMENT_REQUEST, ORDER_INGEST, ORDER_FULFIL, LANE_OUTCOME
)
MACHINE_ROLES: frozenset[str] = frozenset({Role.WMS, Role.INTEGRATION})
#: Writes that record their own audit entry in the transaction that makes the change.
SELF_AUDITED: frozenset[str] = _methods("AdminService", "CreateToken", "RevokeToken")

#: What each role may call.
PERMISSIONS: Mapping[str, frozenset[str]] = {
    Role.ADMIN: ALL_RPCS,
    # Runs the operation: everything but issuing tokens.
    Role.OPS: ALL_RPCS - TOKENS,
    # Answers buyers: reads orders and stock, holds, resumes and cancels orders.
    Role.CS_AGENT: frozenset().union(
        ORDER_READ, ORDER_SERVICE, STOCK_READ, _methods("RoutingService", "GetLaneHealth")
    ),
    # Also decides reviews and re-routes an order by hand, and may read the rules, but
    # changes neither routing rules nor prices, stock or master data.
    Role.CS_LEAD: frozenset().union(
        ORDER_READ, ORDER_SERVICE, ORDER_REVIEW, STOCK_READ, ROUTING_READ, ROUTE
    ),
    # Money: orders and their events, reconciliation, what parcels cost.
    Role.FINANCE: frozenset().union(
        ORDER_READ,
        RECONCILE,
        _methods("StockService", "ListWarehouses", "ListCarriers"),
        _methods("RoutingService", "QuoteRoute", "GetRoutingRules", "ListRoutingRuleVersions"),
    ),
    # A warehouse system: counts, commits and ships what it packed, reads its sync status.
    Role.WMS: frozenset().union(
        _methods(
            "StockService",
            "SetStock",
            "GetAvailability",
            "GetInventoryMap",
            "ListWarehouses",
            "GetReservation",
            "Commit",
            "RequestShipment",
        ),
        _methods("OrderService", "GetOrder", "ShipOrder", "DeliverOrder"),
        _methods("WmsService", "GetSyncStatus", "ListDeadLetters"),
    ),
    # A storefront, marketplace connector or carrier feed: orders in, stock held and
    # watched, delivery outcomes reported.
    Role.INTEGRATION: frozenset().union(
        ORDER_INGEST,
        RESERVATIONS,
        _methods(
            "StockService",
            "GetAvailability",
            "WatchAvailability",
            "GetReservation",
            "ListWarehouses",
        ),
        _methods("OrderService", "GetOrder", "ListShops"),
        _methods("RoutingService", "QuoteRoute", "RecordLaneOutcome"),
    ),
}


#: Who may read the operator web page's data (``/ops``: the inventory map, lane health, the
#: sync and outbox backlog), which the hub serves over HTTP rather than as RPCs.
OPS_PAGE_ROLES: frozenset[str] = frozenset({Role.ADMIN, Role.OPS})


def allowed(role: str, full_method: str) -> bool:
    """Whether ``role`` may call the RPC ``full_method``."""
    return full_method in PERMISSIONS.get(role, frozenset())


def audited(role: str, full_method: str) -> bool:
    """Whether a call is written to the audit log (every write but ledgered machine traffic)."""
    if full_method not in WRITES or full_method in SELF_AUDITED:
        return False
    return not (full_method in LEDGERED and role in MACHINE_ROLES)


def rpcs_of(role: str) -> list[str]:
    """The RPCs a role may call, sorted (for documentation and ``orderhub token``)."""
    return sorted(PERMISSIONS.get(role, frozenset()))


# --------------------------------------------------------------------------------- masking


class Sensitivity(enum.IntEnum):
    """The kinds of personal data (the values of the protos' ``sensitivity`` option)."""

    UNSPECIFIED = 0
    PERSON_NAME = 1
    PHONE = 2
    ADDRESS = 3
    FREE_TEXT = 4
    RAW_PAYLOAD = 5


class Treatment(enum.Enum):
    SHOW = "show"
    MASK = "mask"
    REDACT = "redact"


@dataclass(frozen=True, slots=True)
class Visibility:
    """How one role sees each kind of personal data."""

    name: Treatment = Treatment.SHOW
    phone: Treatment = Treatment.SHOW
    address: Treatment = Treatment.SHOW
    free_text: Treatment = Treatment.SHOW
    raw_payload: Treatment = Treatment.SHOW

    def of(self, kind: Sensitivity) -> Treatment:
        if kind is Sensitivity.PERSON_NAME:
            return self.name
        if kind is Sensitivity.PHONE:
            return self.phone
        if kind is Sensitivity.ADDRESS:
            return self.address
        if kind is Sensitivity.FREE_TEXT:
            return self.free_text
        if kind is Sensitivity.RAW_PAYLOAD:
            return self.raw_payload
        return Treatment.SHOW

    @property
    def sees_everything(self) -> bool:
        return all(
            t is Treatment.SHOW
            for t in (self.name, self.phone, self.address, self.free_text, self.raw_payload)
        )


_CUSTOMER_SERVICE = Visibility(phone=Treatment.MASK, raw_payload=Treatment.REDACT)
_NOTHING = Visibility(*(Treatment.REDACT,) * 5)

#: What each role sees. Warehouses print labels, so they see it all; customer service sees
#: phones masked and raw payloads not at all; finance and integrations see none of it.
VISIBILITY: Mapping[str, Visibility] = {
    Role.ADMIN: Visibility(),
    Role.OPS: Visibility(),
    Role.WMS: Visibility(),
    Role.CS_AGENT: _CUSTOMER_SERVICE,
    Role.CS_LEAD: _CUSTOMER_SERVICE,
    Role.FINANCE: _NOTHING,
    Role.INTEGRATION: _NOTHING,
}


def visibility(role: str) -> Visibility:
    """A role's visibility; an unknown role sees nothing."""
    return VISIBILITY.get(role, _NOTHING)


def mask_phone(value: str) -> str:
    """``13912345678`` → ``139****5678``; keeps the first three and last four digits.

    A leading country code 86 is dropped first; formatting characters go. A value already
    masked by the platform (it holds ``*``) is kept as it is; a number too short to keep
    seven digits of is starred out entirely.
    """
    if not value or "*" in value:
        return value
    digits = "".join(c for c in value if c.isdigit())
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    if len(digits) < 8:
        return "*" * max(len(digits), 4)
    return f"{digits[:3]}{'*' * (len(digits) - 7)}{digits[-4:]}"


def mask_name(value: str) -> str:
    """``张三丰`` → ``张**``, ``Alice Wong`` → ``A*********``: the first character only."""
    if not value:
        return value
    return value[0] + "*" * (len(value) - 1)


def mask_text(kind: Sensitivity, value: str) -> str:
    """A masked rendering of ``value`` of kind ``kind`` (names and phones keep a hint)."""
    if not value:
        return value
    if kind is Sensitivity.PHONE:
        return mask_phone(value)
    if kind is Sensitivity.PERSON_NAME:
        return mask_name(value)
    return REDACTED


def treat(treatment: Treatment, kind: Sensitivity, value: str) -> str:
    """``value`` as a role with ``treatment`` for ``kind`` sees it."""
    if treatment is Treatment.SHOW or not value:
        return value
    if treatment is Treatment.MASK:
        return mask_text(kind, value)
    return REDACTED


def unknown_roles(roles: Iterable[str]) -> list[str]:
    """The names among ``roles`` that are not roles."""
    return [r for r in roles if r not in ROLES]
