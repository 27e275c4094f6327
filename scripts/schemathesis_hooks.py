"""Schemathesis hooks for scripts/schemathesis.sh.

JSON Schema describes each value on its own. A few rules the API documents relate a value to another value,
to the clock, or to stored data, and no schema keyword can state them. A generated case that follows the
schema but breaks one of these rules is refused, rightly, with a documented 400 or 422, and would be counted
as "schema-valid request rejected". These hooks bring such cases in line with the rule, changing only the
value the rule is about:

- a report window's `from` is not after its `to` (nor after now where `to` defaults to now);
- an order's or a refund's `occurred_at` is not in the future;
- a creator token's `expires_at` is in the future and at most ten years away;
- a statement's period is not empty and has ended (`from` before `to`, `to` not after now);
- a refund is in its order's currency, and within that currency's maximum.

Cases generated to break the schema (negative ones) are left alone.

And one failure is dropped, narrowly, as a false positive: `use_after_free` expects a deleted resource to be
gone, but deleting a link is a soft delete by contract (API-CONTRACT.md: "`active=false`, `deleted_at` set, the
edge stops redirecting, every click and conversion stays"). A deleted link stays readable, marked deleted, and
so do its stats. Only that check's failure, for a link deleted with `DELETE /v1/links/{id}` and then read with
`GET /v1/links/{id}` (answering it inactive, with `deleted_at`) or `GET /v1/links/{id}/stats`, is dropped.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import schemathesis
from schemathesis.generation import GenerationMode
from schemathesis.openapi.checks import UseAfterFree

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
WINDOWED = {"GET /v1/links/{id}/stats", "GET /v1/attribution", "GET /v1/conversions"}
TIMED_BODIES = {"POST /v1/conversions", "POST /v1/conversions/{order_id}/refunds"}
REFUNDS = "POST /v1/conversions/{order_id}/refunds"
ORDER_ANSWERS = {"POST /v1/conversions", REFUNDS, "POST /v1/conversions/{order_id}/cancel"}
ORDER_LIST = "GET /v1/conversions"

# Each known order's currency: the one scripts/schemathesis.sh seeds, then every order an answer shows (orders
# the pixel reports are only seen listed).
ORDER_CURRENCIES = {"seed-1001": "USD"}


def instant(value):
    """The RFC 3339 instant `value` names, or None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def into(moment: datetime, start: datetime, end: datetime) -> datetime:
    """`moment` folded into [start, end), deterministically (so a run stays reproducible for its seed)."""
    span = int((end - start).total_seconds())
    offset = int((moment - EPOCH).total_seconds()) % span
    return start + timedelta(seconds=offset)


def bound(case, currency: str) -> int:
    """The largest `amount_minor` the document allows in `currency` (it depends on the deployment)."""
    groups = case.operation.schema.raw_schema["components"]["schemas"]["MoneyInput"]["anyOf"]
    for group in groups:
        if currency in group["properties"]["currency"]["enum"]:
            return group["properties"]["amount_minor"]["maximum"]
    raise LookupError(currency)


def label_of(case) -> str:
    return f"{case.method.upper()} {case.path}"


def is_positive(case) -> bool:
    meta = case.meta
    return meta is None or meta.generation.mode == GenerationMode.POSITIVE


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Every failure is kept but a deleted link read back as a soft-deleted one (see above)."""
    if not isinstance(failure, UseAfterFree) or failure.operation != "DELETE /v1/links/{id}":
        return True
    label = label_of(case)
    if label == "GET /v1/links/{id}/stats":
        return False
    if label == "GET /v1/links/{id}":
        try:
            link = response.json()
        except ValueError:
            return True
        return not (link.get("active") is False and link.get("deleted_at"))
    return True


@schemathesis.hook
def after_call(context, case, response):
    """Remembers the currency of every order an answer shows (one order, or a page of them)."""
    label = label_of(case)
    if response.status_code not in (200, 201) or label not in ORDER_ANSWERS | {ORDER_LIST}:
        return
    try:
        answer = response.json()
        orders = answer["data"] if label == ORDER_LIST else [answer]
        for order in orders:
            ORDER_CURRENCIES[order["order_id"]] = order["amount"]["currency"]
    except (ValueError, KeyError, TypeError):
        pass


def windows(label: str, query: dict, now: datetime) -> None:
    start, end = instant(query.get("from")), instant(query.get("to"))
    if label == "GET /v1/attribution" and start is not None and end is None and start > now:
        query["to"] = query["from"]
    elif start is not None and end is not None and start > end:
        query["from"], query["to"] = query["to"], query["from"]


def statement_period(body: dict, now: datetime) -> None:
    start, end = instant(body.get("from")), instant(body.get("to"))
    if start is None or end is None:
        return
    latest = (now - timedelta(minutes=1)).replace(microsecond=0)
    start, end = (into(t, EPOCH, latest) if not EPOCH <= t <= latest else t for t in (start, end))
    start, end = sorted((start.replace(microsecond=0), end.replace(microsecond=0)))
    if start == end:
        start = start - timedelta(seconds=1) if start > EPOCH else start
        end = start + timedelta(seconds=1)
    body["from"], body["to"] = rfc3339(start), rfc3339(end)


def refund_currency(case, amount: dict) -> None:
    currency = ORDER_CURRENCIES.get((case.path_parameters or {}).get("order_id"))
    minor = amount.get("amount_minor")
    if currency is None or amount.get("currency") == currency:
        return
    if isinstance(minor, (int, float)) and not isinstance(minor, bool) and minor == int(minor):
        amount["currency"] = currency
        # Within the order currency's bound, spelled as generated (`2.0` stays a float).
        amount["amount_minor"] = type(minor)(int(minor) % (bound(case, currency) + 1))


@schemathesis.hook
def map_case(context, case):
    if not is_positive(case):
        return case
    label = label_of(case)
    now = datetime.now(timezone.utc)
    if label in WINDOWED and case.query:
        windows(label, case.query, now)
    if not isinstance(case.body, dict):
        return case
    body = case.body
    if label in TIMED_BODIES:
        at = instant(body.get("occurred_at"))
        if at is not None and at > now:
            body["occurred_at"] = rfc3339(into(at, EPOCH, now - timedelta(minutes=1)))
    if label == "POST /v1/me/statements":
        statement_period(body, now)
    if label == REFUNDS and isinstance(body.get("amount"), dict):
        refund_currency(case, body["amount"])
    if label == "POST /v1/creators/{id}/tokens" and body.get("expires_in_days") is None:
        at = instant(body.get("expires_at"))
        if at is not None and not now + timedelta(minutes=1) < at <= now + timedelta(days=3649):
            body["expires_at"] = rfc3339(into(at, now + timedelta(days=1), now + timedelta(days=3649)))
    return case
