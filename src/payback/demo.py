"""A realistic, deterministic demo data set, built only through the public service functions.

``seed_demo(engine, seed=42, customers=24, invoices=240)`` creates customers in Germany, France,
the Netherlands, Spain, Italy, the UK, the US and Japan; invoices in EUR, GBP, USD and JPY with
their countries' real tax rates (standard, reduced and zero), tax-inclusive (consumer prices in
Europe and Japan) and tax-exclusive (US sales tax, business customers); line and invoice
discounts; shipping lines; card, bank-transfer and store-credit payments, partial and missing
payments; and refunds of every kind: full, partial by amount, by line items (shipping included)
and to store credit, some invoices refunded twice. Then ``demo_approvals`` adds a refund policy
and an approval queue. The reference data (names, products, tax rates) is in ``demo_data``.

Invariants:
- the demo never breaks a rule: it refunds only fully paid invoices, never more than what remains
  refundable (it reads the invoice first), and pays with store credit only what the wallet holds.
  Any ``DomainError`` raised here is therefore a bug, in the demo or in a service;
- everything is derived from ``random.Random(seed)`` and a stepping clock, so the same seed gives
  the same invoices, amounts, dates and refunds (ids, being ULIDs, differ);
- the whole year is planned first (a list of dated events), then replayed in date order, each
  business step in its own transaction, so the progress total is known up front;
- all dates fall in 2026, spread over the months, so monthly reports have something to show;
- the policy and the queue come last and never draw from the random generator.
"""

from __future__ import annotations

import itertools
import random
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import Engine, func, select

from payback import demo_data as data
from payback.audit import service as audit
from payback.customers import service as customers_service
from payback.db import read, write
from payback.demo_approvals import seed_approvals
from payback.invoicing import service as invoicing
from payback.invoicing.domain import LineInput
from payback.invoicing.tables import invoices as invoices_table
from payback.money import mul_div
from payback.payments import service as payments
from payback.refunds import service as refunds
from payback.refunds.domain import LineRequest, RefundRequest
from payback.store_credit import service as store_credit

Progress = Callable[[int, int], None]


class SteppingClock:
    """A clock that only moves forward, to the time of the event being replayed."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def move_to(self, at: datetime) -> None:
        self._now = max(self._now, at)

    def tick(self, minutes: int = 1) -> None:
        self._now += timedelta(minutes=minutes)


def local_price(euro_cents: int, currency: str) -> int:
    """A shelf price in the local currency: x.99 in GBP and USD, tens of yen in JPY."""
    num, den = data.FX[currency]
    if currency == "EUR":
        return euro_cents
    if currency == "JPY":  # 1 euro cent × 1.62 = yen (JPY has no minor unit)
        return max(10, mul_div(euro_cents, num, den * 10, rounding="half_up") * 10)
    return max(99, mul_div(euro_cents, num, den * 100, rounding="half_up") * 100 - 1)


# ---------------------------------------------------------------------------------- planning


@dataclass
class Customer:
    name: str
    email: str
    locale: str
    country: str
    region: str
    currency: str
    business: bool
    id: str | None = None


@dataclass
class InvoicePlan:
    customer: Customer
    tax_mode: str
    lines: list[LineInput]
    discount_minor: int
    memo: str | None
    payment: str  # unpaid | partial | installments | card | bank
    id: str | None = None


@dataclass(order=True)
class Event:
    at: datetime
    seq: int
    kind: str = field(compare=False)
    target: object = field(compare=False)
    step: str = field(default="", compare=False)


def _chance(rng: random.Random, percent: int) -> bool:
    """True ``percent`` times in 100 (integers only: no floats in Payback's source)."""
    return rng.randrange(100) < percent


def _make_customers(rng: random.Random, count: int) -> list[Customer]:
    out, taken = [], set()
    for i in range(count):
        country = data.COUNTRY_CYCLE[i % len(data.COUNTRY_CYCLE)]
        currency, locale, regions, firsts, lasts, companies = data.COUNTRIES[country]
        business = _chance(rng, 20)
        for _ in range(20):  # a few tries for a fresh name; a big demo may repeat one, as life does
            name = rng.choice(companies) if business else f"{rng.choice(firsts)} {rng.choice(lasts)}"
            if name not in taken:
                break
            business = False  # companies are few: fall back to a person
        taken.add(name)
        out.append(Customer(name, f"{_slug(name)}.{i + 1}@example.com", locale, country,
                            rng.choice(regions), currency, business))
    return out


def _slug(name: str) -> str:
    """``"Chloé Dubois"`` → ``"chloe.dubois"`` (for e-mail addresses at example.com)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return ".".join("".join(ch for ch in part if ch.isalnum()) for part in
                    ascii_name.lower().split()).strip(".")


def _make_lines(rng: random.Random, cust: Customer) -> list[LineInput]:
    rates = data.TAX[cust.region]
    lines = []
    for desc, sku, cat, price, tax_class, max_qty in rng.sample(data.PRODUCTS,
                                                                rng.randint(1, 4)):
        qty = rng.randint(1, max_qty)
        unit = local_price(price, cust.currency)
        pct = rng.choice((10, 15, 20)) if _chance(rng, 20) else 0
        discount = mul_div(qty * unit, pct, 100, rounding="half_up")
        lines.append(LineInput(desc, qty, unit, Decimal(rates[tax_class]), discount, "item",
                               sku, cat))
    items_euro = sum(data.EURO_PRICE[ln.sku] * ln.quantity for ln in lines)
    if items_euro < data.FREE_SHIPPING_FROM or _chance(rng, 25):
        desc, price = data.SHIPPING[1] if _chance(rng, 20) else data.SHIPPING[0]
        rate = rates.get("shipping", rates["standard"])
        lines.append(LineInput(desc, 1, local_price(price, cust.currency), Decimal(rate),
                               kind="shipping", sku="SHIP", category="shipping"))
    return lines


def _invoice_discount(rng: random.Random, lines: list[LineInput]) -> tuple[int, str | None]:
    items = sum(ln.quantity * ln.unit_price_minor - ln.discount_minor for ln in lines
                if ln.kind == "item")
    roll = rng.randrange(100)
    if roll < 12:
        return mul_div(items, 10, 100, rounding="half_up"), "Voucher WELCOME10: 10% off"
    if roll < 20:
        return mul_div(items, 5, 100, rounding="half_up"), "Loyalty discount 5%"
    return 0, None


def _plan_invoice(rng: random.Random, cust: Customer) -> InvoicePlan:
    lines = _make_lines(rng, cust)
    discount, memo = _invoice_discount(rng, lines)
    if cust.currency == "USD" or cust.business:
        tax_mode = "exclusive"  # US sales tax is added at checkout; B2B prices are net
    elif cust.currency == "JPY":
        tax_mode = "inclusive"  # Japanese consumer prices include consumption tax
    else:
        tax_mode = "inclusive" if _chance(rng, 80) else "exclusive"
    weights = data.PAYMENT_WEIGHTS
    payment = rng.choices(list(weights), weights=list(weights.values()))[0]
    return InvoicePlan(cust, tax_mode, lines, discount, memo, payment)


def _pick_scenario(rng: random.Random, plan: InvoicePlan, uncovered: list[str]) -> str:
    """Cover every story once first (so even a small demo shows them all), then draw by weight."""
    has_shipping = any(ln.kind == "shipping" for ln in plan.lines)
    fits = [s for s in uncovered if has_shipping or s not in data.NEEDS_SHIPPING]
    if fits:
        uncovered.remove(fits[0])
        return fits[0]
    names = [s for s in data.SCENARIO_WEIGHTS if has_shipping or s not in data.NEEDS_SHIPPING]
    return rng.choices(names, weights=[data.SCENARIO_WEIGHTS[s] for s in names])[0]


def _at(start: datetime, rng: random.Random, lo_days: int, hi_days: int) -> datetime:
    """A business-hours moment between lo and hi days after ``start``, never after 2026."""
    day = (start + timedelta(days=rng.randint(lo_days, hi_days))).replace(
        hour=rng.randint(8, 19), minute=rng.randint(0, 59))
    return min(max(day, start + timedelta(minutes=1)), data.YEAR_END)


def plan_year(rng: random.Random, n_customers: int, n_invoices: int) -> list[Event]:
    """Every event of the demo year, sorted by time (ties keep their causal order)."""
    events: list[Event] = []
    seq = itertools.count()
    people = _make_customers(rng, n_customers)
    for i, cust in enumerate(people):
        events.append(Event(data.YEAR_START + timedelta(minutes=9 * i), next(seq), "customer", cust))
    span = (data.INVOICES_UNTIL - data.INVOICES_FROM) // timedelta(seconds=1)
    issued = sorted(data.INVOICES_FROM + timedelta(seconds=rng.randrange(span))
                    for _ in range(n_invoices))
    uncovered = list(data.SCENARIOS)
    for i, at in enumerate(issued):
        # The first invoices go to the first customers, so every currency appears.
        cust = people[i] if i < min(4, n_customers) else rng.choice(people)
        plan = _plan_invoice(rng, cust)
        events.append(Event(at, next(seq), "invoice", plan))
        events.extend(_plan_payments_and_refunds(rng, plan, at, seq, uncovered))
    return sorted(events)


def _plan_payments_and_refunds(rng, plan: InvoicePlan, issued: datetime, seq,
                               uncovered: list[str]) -> list[Event]:
    if plan.payment == "unpaid":
        return []
    paid_at = _at(issued, rng, 0, 12)
    out = [Event(paid_at, next(seq), "pay", plan, "first")]
    if plan.payment == "installments":
        out.append(Event(_at(paid_at, rng, 14, 30), next(seq), "pay", plan, "rest"))
    if plan.payment in ("card", "bank") and _chance(rng, 42):
        at = paid_at
        for step in data.SCENARIOS[_pick_scenario(rng, plan, uncovered)]:
            at = _at(at, rng, 2, 25)
            out.append(Event(at, next(seq), "refund", plan, step))
    return out


# --------------------------------------------------------------------------------- execution


#: The fields of a created object that its audit record keeps.
AUDITED = ("id", "number", "status", "amount_minor", "total_minor", "currency", "invoice_id")


class _Run:
    """Replays the planned events against the database, one transaction per business step."""

    def __init__(self, engine: Engine, rng: random.Random, sandbox=None) -> None:
        self.engine, self.rng, self.sandbox = engine, rng, sandbox
        self.clock = SteppingClock(data.YEAR_START)
        self.counts = {"customers": 0, "invoices": 0, "payments": 0, "store_credit_payments": 0,
                       "refunds": 0, "refunds_full": 0, "refunds_amount": 0, "refunds_lines": 0,
                       "refunds_to_store_credit": 0, "refunds_skipped": 0}

    def apply(self, ev: Event) -> None:
        self.clock.move_to(ev.at)
        getattr(self, f"_{ev.kind}")(ev.target, ev.step)

    def _write(self, action: str, object_type: str, call) -> dict:
        """One demo step: its service call and its audit record, in one transaction (the demo's
        writes are audited like any other, as the system acting from the command line)."""
        with write(self.engine) as conn:
            row = call(conn)
            audit.record(conn, at=self.clock.now(), actor_id="demo", actor_kind="system",
                         actor_role="admin", seller_id=row.get("seller_id"), action=action,
                         object_type=object_type, object_id=row["id"], outcome="allowed",
                         summary={"after": {k: row[k] for k in AUDITED if k in row}},
                         origin="cli")
        return row

    def _customer(self, cust: Customer, _step: str) -> None:
        row = self._write("customer.create", "customer", lambda conn:
                          customers_service.create_customer(
                              conn, self.clock, name=cust.name, email=cust.email,
                              locale=cust.locale, country=cust.country))
        cust.id = row["id"]
        self.counts["customers"] += 1

    def _invoice(self, plan: InvoicePlan, _step: str) -> None:
        inv = self._write("invoice.create", "invoice", lambda conn: invoicing.create_invoice(
            conn, self.clock, customer_id=plan.customer.id, currency=plan.customer.currency,
            tax_mode=plan.tax_mode, lines=plan.lines, discount_minor=plan.discount_minor,
            memo=plan.memo))
        plan.id = inv["id"]
        self.counts["invoices"] += 1

    def _pay(self, plan: InvoicePlan, step: str) -> None:
        with read(self.engine) as conn:
            due = invoicing.get_invoice(conn, plan.id)["amount_due_minor"]
            wallets = store_credit.get_wallets(conn, plan.customer.id)
        credit = next((w["balance_minor"] for w in wallets
                       if w["currency"] == plan.customer.currency), 0)
        if plan.payment in ("partial", "installments") and step == "first":
            self._record(plan, "bank_transfer", max(1, mul_div(due, self.rng.randint(30, 70),
                                                                100, rounding="half_up")))
            return
        if plan.payment in ("card", "bank") and credit > 0 and _chance(self.rng, 75):
            used = min(credit, due)  # spend the store credit first, the rest by card
            self._record(plan, "store_credit", used)
            due -= used
            self.clock.tick()
        if due > 0:
            self._record(plan, "bank_transfer" if plan.payment != "card" else "card", due)

    def _record(self, plan: InvoicePlan, method: str, amount: int) -> None:
        card = None
        if method == "card":
            brand = "jcb" if plan.customer.currency == "JPY" and _chance(self.rng, 50) else \
                self.rng.choice(("visa", "visa", "mastercard", "amex"))
            card = {"token": f"tok_demo_{self.rng.getrandbits(48):012x}", "brand": brand,
                    "last4": f"{self.rng.randint(0, 9999):04d}"}
        ref = f"SEPA-{self.rng.randint(100000, 999999)}" if method == "bank_transfer" else None
        gateway = None
        if card is not None and self.sandbox is not None:
            # Captured through the sandbox gateway, so its refunds go back through it.
            ref, gateway = self.sandbox.create_payment(amount, plan.customer.currency,
                                                       card=card["token"]), "sandbox"
        self._write("payment.record", "payment", lambda conn: payments.record_payment(
            conn, self.clock, plan.id, method=method, amount_minor=amount,
            currency=plan.customer.currency, card=card, reference=ref, gateway=gateway))
        self.counts["payments"] += 1
        self.counts["store_credit_payments"] += method == "store_credit"

    def _refund(self, plan: InvoicePlan, step: str) -> None:
        with read(self.engine) as conn:
            inv = invoicing.get_invoice(conn, plan.id)
        req = None
        if inv["amount_due_minor"] == 0 and inv["amount_refundable_minor"] > 0:
            req = build_request(step, inv, self.rng)
        if req is None:
            self.counts["refunds_skipped"] += 1
            return
        self._write("refund.create", "refund",
                    lambda conn: refunds.create_refund(conn, self.clock, plan.id, req))
        self.counts["refunds"] += 1
        self.counts[f"refunds_{req.kind}"] += 1
        self.counts["refunds_to_store_credit"] += req.method == "store_credit"


# ------------------------------------------------------------------------- refund requests

def build_request(step: str, inv: dict, rng: random.Random) -> RefundRequest | None:
    """A refund that the invoice, as it is now, allows; ``None`` when nothing fits."""
    method = "store_credit" if step.endswith("_to_credit") else "original_payment"
    kind = step.removesuffix("_to_credit").removesuffix("_with_shipping")
    if kind == "shipping":
        picks = _shipping_pick(inv)
        reason, note = "goodwill", "Parcel arrived late: shipping refunded"
    elif kind == "lines":
        picks = _line_picks(inv, rng, with_shipping=step == "lines_with_shipping")
        reason, note = rng.choice(data.NOTES["lines"])
    elif kind == "amount":
        amount = _partial_amount(inv, rng)
        reason, note = rng.choice(data.NOTES["amount"])
        return RefundRequest("amount", method, reason, amount_minor=amount, note=note) \
            if amount else None
    else:
        reason, note = (("requested_by_customer", "Remaining balance kept as store credit")
                        if method == "store_credit" else rng.choice(data.NOTES["full"]))
        return RefundRequest("full", method, reason, note=note)
    if not picks:
        return None
    return RefundRequest("lines", method, reason, lines=tuple(picks), note=note)


def _open_lines(inv: dict, kind: str) -> list[dict]:
    return [ln for ln in inv["lines"] if ln["kind"] == kind
            and ln["refundable_quantity"] > 0 and ln["refundable_gross_minor"] > 0]


def _shipping_pick(inv: dict) -> list[LineRequest]:
    return [LineRequest(ln["id"], ln["refundable_quantity"]) for ln in _open_lines(inv, "shipping")]


def _line_picks(inv: dict, rng: random.Random, *, with_shipping: bool) -> list[LineRequest]:
    items = _open_lines(inv, "item")
    if not items:
        return []
    chosen = rng.sample(items, 1 if len(items) < 3 or _chance(rng, 70) else 2)
    picks = [LineRequest(ln["id"], rng.randint(1, ln["refundable_quantity"])) for ln in chosen]
    if with_shipping or _chance(rng, 30):
        picks += _shipping_pick(inv)
    return picks


def _partial_amount(inv: dict, rng: random.Random) -> int:
    """10–30 % of what is refundable, rounded down to a whole unit (¥100 in JPY) when it can be."""
    refundable = min(inv["amount_refundable_minor"],
                     sum(ln["refundable_gross_minor"] for ln in inv["lines"]))
    amount = mul_div(refundable, rng.choice((10, 15, 20, 25, 30)), 100, rounding="half_up")
    rounded = amount - amount % 100
    return min(rounded or amount, refundable)


# ------------------------------------------------------------------------------- entry point


#: The staff accounts the demo opens, so that a newcomer can log in to the web console as an
#: agent (requests refunds) and as a different approver (decides them: four eyes).
DEMO_STAFF = (data.DEMO_AGENT,
              {"email": "approver@payback.local", "name": "Demo Approver", "role": "approver"})


def create_demo_staff(engine: Engine, clock=None) -> list[dict[str, str]]:
    """Open the demo's staff accounts that do not exist yet, with random passwords: the first
    admin (only on a database without any staff, as ``payback users bootstrap`` would), the
    agent and the approver. Returns ``{"email", "role", "password"}`` for each account created
    now: the only time its password exists in clear (only its Argon2 hash is stored)."""
    from payback.access import service as access
    from payback.access.tables import DEFAULT_SELLER_ID
    from payback.clock import SystemClock

    clock = clock or SystemClock()
    created = []
    with write(engine) as conn:
        admin = access.ensure_first_admin(conn, clock)
        if admin is not None:
            created.append({"email": admin[0], "role": "admin", "password": admin[1]})
        for person in DEMO_STAFF:
            if access.find_login(conn, person["email"]) is not None:
                continue
            password = access.random_password()
            access.create_user(conn, clock, seller_id=DEFAULT_SELLER_ID, password=password,
                               **person)
            created.append({"email": person["email"], "role": person["role"],
                            "password": password})
        for made in created:
            user_id = access.find_login(conn, made["email"]).id
            audit.record(conn, at=clock.now(), actor_id="demo", actor_kind="system",
                         actor_role="admin", seller_id=DEFAULT_SELLER_ID, action="user.create",
                         object_type="staff_user", object_id=user_id, outcome="allowed",
                         summary={"after": {"email": made["email"], "role": made["role"]}},
                         origin="cli")
    return created


def count_invoices(engine: Engine) -> int:
    with read(engine) as conn:
        return int(conn.execute(select(func.count()).select_from(invoices_table)).scalar())


def seed_demo(engine: Engine, *, seed: int = 42, customers: int = 24, invoices: int = 240,
              progress: Progress | None = None, sandbox=None) -> dict[str, int]:
    """Seed the demo; returns counts of what was created. ``progress(done, total)`` is called
    after every step.

    With a ``sandbox`` gateway, card payments are captured through it and the year's card
    refunds are paid back through it (worker jobs, sandbox completion and signed webhooks run
    in-process, at the demo's clock), so the history ends settled. Without one, card payments
    have no gateway and their refunds settle at once."""
    if customers < 1 or invoices < 0:
        raise ValueError("the demo needs at least one customer and a non-negative invoice count")
    rng = random.Random(seed)
    events = plan_year(rng, customers, invoices)
    run = _Run(engine, rng, sandbox)
    for done, ev in enumerate(events, 1):
        run.apply(ev)
        if progress is not None:
            progress(done, len(events))
    if sandbox is not None:
        run.counts["gateway_refunds_settled"] = settle_through_gateway(engine, run.clock, sandbox)
    return {**run.counts, **seed_approvals(engine, run.clock)}


def settle_through_gateway(engine: Engine, clock, sandbox, rounds: int = 20) -> int:
    """Run the gateway jobs, let the sandbox complete its refunds and deliver its signed
    webhooks to Payback's receiver, until no gateway refund is left open. Returns how many
    refunds the gateway settled."""
    from payback.gateways import flow
    from payback.gateways.tables import INTENT_TERMINAL, gateway_intents
    from payback.outbox.fanout import Subscribers
    from payback.outbox.worker import Registry, drain

    reg = Registry()
    flow.install(reg, Subscribers())

    def deliver(headers: dict, body: bytes) -> int:
        flow.receive_webhook(engine, clock, "sandbox", headers, body)
        return 200

    def open_intents() -> int:
        with read(engine) as conn:
            return int(conn.execute(select(func.count()).select_from(gateway_intents).where(
                gateway_intents.c.status.not_in(INTENT_TERMINAL))).scalar())

    for _ in range(rounds):
        drain(engine, clock, registry=reg)
        sandbox.advance()
        sandbox.deliver_webhooks(deliver)
        if not open_intents():
            break
    with read(engine) as conn:
        return int(conn.execute(select(func.count()).select_from(gateway_intents).where(
            gateway_intents.c.status == "succeeded")).scalar())


def close_history(engine: Engine, clock) -> int:
    """Mark the demo year's remaining outbox events done without delivering them: a demo's
    invented history must not e-mail its invented customers or flood a webhook endpoint when
    the server's worker starts. Only what happens after seeding is delivered."""
    from sqlalchemy import update

    from payback.outbox.tables import outbox_events

    with write(engine) as conn:
        return conn.execute(update(outbox_events).where(outbox_events.c.status == "pending")
                            .values(status="done", processed_at=clock.now(),
                                    last_error="demo history: not delivered")).rowcount
