"""Whole flows through the HTTP API, with the figures computed by hand in the comments.

- invoices, tax-exclusive and tax-inclusive, with line and invoice discounts and shipping;
- pay; preview a partial line-item refund (exact numbers; the preview writes nothing); create it;
  refund the rest to store credit; the invoice is ``refunded``; the wallet holds the store-credit
  refund; the revenue report equals the ledger's trial balance;
- store credit paying part of a later invoice; spending more than the balance is a 409
  ``insufficient_store_credit`` with nothing written; refunding that invoice gives the store
  credit back to the wallet and the card part to the card;
- cursor pagination over /v1/refunds and /v1/invoices (limit=2): no duplicates, no gaps,
  ``has_more`` false at the end;
- /openapi.json lists every /v1 route and /docs answers.
"""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute

from payback.api.app import ROUTERS

SHOE_ONE = {"kind": "lines", "reason": "product_defective", "note": "left shoe split"}


def _line(inv: dict, i: int) -> dict:
    return {k: inv["lines"][i][k] for k in (
        "kind", "quantity", "line_discount_minor", "invoice_discount_minor", "net_minor",
        "tax_minor", "gross_minor")}


def _totals(inv: dict) -> dict:
    return {k: inv[k] for k in ("subtotal_minor", "discount_minor", "net_minor", "tax_minor",
                                "total_minor", "amount_due_minor", "status")}


def test_exclusive_invoice_totals(paid_invoice):
    """Shoes 2 × 50.00 − 10.00 = 90.00; socks 30.00; invoice discount 6.00 split 90:30 → 4.50 and
    1.50; shipping 5.00 (no discount share); 20 % on each line, rounded per line."""
    inv = paid_invoice["invoice"]
    assert _line(inv, 0) == {"kind": "item", "quantity": 2, "line_discount_minor": 1000,
                             "invoice_discount_minor": 450, "net_minor": 8550,
                             "tax_minor": 1710, "gross_minor": 10260}
    assert _line(inv, 1) == {"kind": "item", "quantity": 3, "line_discount_minor": 0,
                             "invoice_discount_minor": 150, "net_minor": 2850,
                             "tax_minor": 570, "gross_minor": 3420}
    assert _line(inv, 2) == {"kind": "shipping", "quantity": 1, "line_discount_minor": 0,
                             "invoice_discount_minor": 0, "net_minor": 500, "tax_minor": 100,
                             "gross_minor": 600}
    assert _totals(inv) == {"subtotal_minor": 13500, "discount_minor": 1600, "net_minor": 11900,
                            "tax_minor": 2380, "total_minor": 14280, "amount_due_minor": 14280,
                            "status": "open"}
    assert inv["number"] == "INV-000001" and inv["tax_mode"] == "exclusive"
    assert inv["lines"][0]["sku"] == "SH-1" and inv["lines"][0]["category"] == "footwear"


def test_inclusive_invoice_totals(api):
    """Prices include tax. Boots 2 × 60.00 at 20 %, book 21.00 at 5 %; invoice discount 14.10
    split 120:21 → 12.00 and 2.10. Boots gross 108.00, tax 108 × 0.2/1.2 = 18.00; book gross
    18.90, tax 18.90 × 0.05/1.05 = 0.90; shipping 6.00 incl. 1.00 tax."""
    cus = api.customer("Brontë", country="GB", locale="en_GB")
    inv = api.invoice(cus["id"], [
        {"description": "Boots", "quantity": 2, "unit_price_minor": 6000, "tax_rate": "0.20"},
        {"description": "Book", "quantity": 1, "unit_price_minor": 2100, "tax_rate": "0.05"},
    ], currency="GBP", tax_mode="inclusive", discount_minor=1410,
        shipping={"amount_minor": 600, "tax_rate": "0.20", "description": "Courier"})
    assert _line(inv, 0) == {"kind": "item", "quantity": 2, "line_discount_minor": 0,
                             "invoice_discount_minor": 1200, "net_minor": 9000,
                             "tax_minor": 1800, "gross_minor": 10800}
    assert _line(inv, 1) == {"kind": "item", "quantity": 1, "line_discount_minor": 0,
                             "invoice_discount_minor": 210, "net_minor": 1800, "tax_minor": 90,
                             "gross_minor": 1890}
    assert _line(inv, 2)["gross_minor"] == 600 and _line(inv, 2)["tax_minor"] == 100
    assert inv["lines"][2]["description"] == "Courier"
    assert _totals(inv) == {"subtotal_minor": 14700, "discount_minor": 1410, "net_minor": 11300,
                            "tax_minor": 1990, "total_minor": 13290, "amount_due_minor": 13290,
                            "status": "open"}
    assert api.get(f"/v1/invoices/{inv['id']}") == inv
    # Two partial payments, then it is paid.
    api.pay(inv, 3290, method="bank_transfer", reference="SEPA-1")
    assert api.get(f"/v1/invoices/{inv['id']}")["amount_due_minor"] == 10000
    api.pay(inv, 10000, method="cash")
    after = api.get(f"/v1/invoices/{inv['id']}")
    assert after["status"] == "paid" and after["amount_paid_minor"] == 13290
    assert after["amount_refundable_minor"] == 13290


def test_refund_flow_preview_partial_then_rest_to_store_credit(client, engine, api, paid_invoice,
                                                               snapshot):
    inv, cus = paid_invoice["invoice"], paid_invoice["customer"]
    pay = paid_invoice["payment"]
    assert pay["amount_minor"] == 14280 and pay["card_last4"] == "4242"
    assert api.get(f"/v1/invoices/{inv['id']}")["status"] == "paid"
    one_shoe = {**SHOE_ONE, "lines": [{"line_id": paid_invoice["shoes"], "quantity": 1}]}

    # Preview one of two shoes: half the line's 102.60 gross, its tax 17.10 and discount
    # 14.50 (10.00 line + 4.50 invoice share) in proportion.
    before = snapshot(engine, include_idempotency=True)
    resp = client.post(f"/v1/invoices/{inv['id']}/refunds/preview", json=one_shoe)
    assert resp.status_code == 200, resp.text
    preview = resp.json()
    assert snapshot(engine, include_idempotency=True) == before
    expected_lines = [{"invoice_line_id": paid_invoice["shoes"], "quantity": 1,
                       "gross_minor": 5130, "net_minor": 4275, "tax_minor": 855,
                       "discount_minor": 725}]
    decision = preview.pop("decision")
    # No policy configured for this seller: the built-in default allows, due in 14 days.
    assert decision["outcome"] == "allow" and decision["policy_id"] == "default"
    assert decision["due_at"] == "2026-01-29T10:00:00Z"
    assert preview == {
        "object": "refund_preview", "invoice_id": inv["id"], "currency": "EUR", "kind": "lines",
        "method": "original_payment", "reason": "product_defective", "amount_minor": 5130,
        "net_minor": 4275, "tax_minor": 855, "fee_minor": 0, "refundable_before_minor": 14280,
        "refundable_after_minor": 9150, "lines": expected_lines,
        "tenders": [{"payment_id": pay["id"], "payment_method": "card",
                     "destination": "original_payment", "amount_minor": 5130}]}

    refund = api.refund(inv["id"], one_shoe, key="refund-one-shoe")
    assert {k: refund[k] for k in ("status", "kind", "method", "amount_minor", "net_minor",
                                   "tax_minor", "currency", "customer_id", "note")} == {
        "status": "succeeded", "kind": "lines", "method": "original_payment",
        "amount_minor": 5130, "net_minor": 4275, "tax_minor": 855, "currency": "EUR",
        "customer_id": cus["id"], "note": "left shoe split"}
    assert [{k: v for k, v in ln.items()} for ln in refund["lines"]] == expected_lines
    assert refund["tenders"] == [{"payment_id": pay["id"], "destination": "original_payment",
                                  "amount_minor": 5130}]
    assert api.get(f"/v1/refunds/{refund['id']}") == refund
    mid = api.get(f"/v1/invoices/{inv['id']}")
    assert (mid["status"], mid["amount_refunded_minor"], mid["amount_refundable_minor"]) == \
        ("partially_refunded", 5130, 9150)
    shoes = mid["lines"][0]
    assert (shoes["refunded_quantity"], shoes["refunded_gross_minor"],
            shoes["refunded_tax_minor"], shoes["refundable_quantity"],
            shoes["refundable_gross_minor"]) == (1, 5130, 855, 1, 5130)
    assert api.get(f"/v1/payments/{pay['id']}")["refunded_minor"] == 5130

    # The rest (91.50) to store credit: everything left, tax 23.80 − 8.55 = 15.25 exactly.
    rest = api.refund(inv["id"], {"kind": "full", "method": "store_credit",
                                  "reason": "requested_by_customer"})
    assert (rest["amount_minor"], rest["net_minor"], rest["tax_minor"]) == (9150, 7625, 1525)
    assert rest["tenders"] == [{"payment_id": pay["id"], "destination": "store_credit",
                                "amount_minor": 9150}]
    final = api.get(f"/v1/invoices/{inv['id']}")
    assert (final["status"], final["amount_refunded_minor"], final["amount_refundable_minor"]) == \
        ("refunded", 14280, 0)
    assert sum(ln["refunded_tax_minor"] for ln in final["lines"]) == 2380
    assert [ln["refundable_quantity"] for ln in final["lines"]] == [0, 0, 0]

    wallet = api.get(f"/v1/customers/{cus['id']}/store-credit/EUR")
    assert wallet["balance_minor"] == 9150 == rest["amount_minor"]
    assert [(t["kind"], t["amount_minor"], t["balance_after_minor"], t["refund_id"])
            for t in wallet["transactions"]] == [("refund", 9150, 9150, rest["id"])]
    assert api.get(f"/v1/customers/{cus['id']}/store-credit")["data"][0]["balance_minor"] == 9150

    # Nothing more to give back.
    resp = client.post(f"/v1/invoices/{inv['id']}/refunds",
                       json={"kind": "amount", "amount_minor": 1, "reason": "goodwill"})
    assert resp.status_code == 409, resp.text


def _accounts(tb: dict, currency: str) -> dict[str, dict]:
    return {a["account_code"]: a for a in tb["accounts"] if a["currency"] == currency}


def test_revenue_report_equals_the_ledger(api, paid_invoice):
    inv, cus = paid_invoice["invoice"], paid_invoice["customer"]
    api.refund(inv["id"], {**SHOE_ONE, "lines": [{"line_id": paid_invoice["shoes"],
                                                   "quantity": 1}]})
    api.refund(inv["id"], {"kind": "full", "method": "store_credit", "reason": "goodwill"})
    # Another EUR invoice, unpaid: 50.00 + 10 % tax; and a JPY one (exponent 0): ¥3,000 + 10 %.
    api.invoice(cus["id"], [{"description": "Lamp", "quantity": 1, "unit_price_minor": 5000,
                             "tax_rate": "0.10"}])
    yen = api.invoice(cus["id"], [{"description": "Tea", "quantity": 3, "unit_price_minor": 1000,
                                   "tax_rate": "0.10"}], currency="JPY")
    api.pay(yen, method="cash")
    api.refund(yen["id"], {"kind": "amount", "amount_minor": 1100, "reason": "goodwill"})

    report = api.get("/v1/reports/revenue?from=2026-01-01&to=2026-02-01")
    (period,) = report["periods"]
    by_cur = {c["currency"]: c for c in period["currencies"]}
    assert by_cur["EUR"] == {
        "currency": "EUR", "gross_sales_minor": 16900, "returns_minor": 11900,
        "net_revenue_minor": 5000, "tax_collected_minor": 2880, "tax_refunded_minor": 2380,
        "net_tax_minor": 500, "refunds_paid_out_minor": 5130,
        "refunds_to_store_credit_minor": 9150}
    # ¥1,100 back of ¥3,300: net 1,000, tax 100.
    assert by_cur["JPY"] == {
        "currency": "JPY", "gross_sales_minor": 3000, "returns_minor": 1000,
        "net_revenue_minor": 2000, "tax_collected_minor": 300, "tax_refunded_minor": 100,
        "net_tax_minor": 200, "refunds_paid_out_minor": 1100,
        "refunds_to_store_credit_minor": 0}

    tb = api.get("/v1/ledger/trial-balance")
    assert all(t["balanced"] and t["debit_minor"] == t["credit_minor"] for t in tb["totals"])
    for cur, row in by_cur.items():
        acc = _accounts(tb, cur)
        bal = {code: a["balance_minor"] for code, a in acc.items()}.get
        assert row["gross_sales_minor"] == bal("4000", 0)            # Revenue
        assert row["returns_minor"] == -bal("4100", 0)               # Sales returns (contra)
        assert row["net_revenue_minor"] == bal("4000", 0) + bal("4100", 0)
        assert row["net_tax_minor"] == bal("2100", 0)                # Tax payable
        assert row["refunds_paid_out_minor"] == acc["2200"]["debit_minor"]
        assert row["refunds_to_store_credit_minor"] == bal("2300", 0)  # nothing spent yet
    assert api.get("/v1/ledger/trial-balance?currency=JPY")["totals"] == [
        {"currency": "JPY", "debit_minor": tb_total(tb, "JPY"), "credit_minor":
         tb_total(tb, "JPY"), "balanced": True}]

    monthly = api.get("/v1/reports/revenue?from=2025-12-01&to=2026-02-01&group_by=month"
                      "&currency=EUR")
    assert [p["from"] for p in monthly["periods"]] == ["2025-12-01", "2026-01-01"]
    assert monthly["periods"][0]["currencies"] == []
    assert monthly["periods"][1]["currencies"] == [by_cur["EUR"]]
    later = api.get("/v1/reports/revenue?from=2026-02-01&to=2026-03-01")
    assert later["periods"][0]["currencies"] == []


def tb_total(tb: dict, currency: str) -> int:
    (total,) = [t for t in tb["totals"] if t["currency"] == currency]
    return total["debit_minor"]


def test_store_credit_pays_part_of_a_later_invoice(client, engine, api, paid_invoice, snapshot,
                                                   problem):
    inv, cus = paid_invoice["invoice"], paid_invoice["customer"]
    api.refund(inv["id"], {"kind": "full", "method": "store_credit", "reason": "goodwill"})
    wallet_url = f"/v1/customers/{cus['id']}/store-credit/EUR"
    assert api.get(wallet_url)["balance_minor"] == 14280

    later = api.invoice(cus["id"], [{"description": "Coat", "quantity": 1,
                                     "unit_price_minor": 25000, "tax_rate": "0"}])
    sc1 = api.pay(later, 3000, method="store_credit")
    assert sc1["method"] == "store_credit" and sc1["amount_minor"] == 3000
    assert api.get(wallet_url)["balance_minor"] == 11280
    assert api.get(f"/v1/invoices/{later['id']}")["amount_due_minor"] == 22000

    # More than the balance (though less than the amount due): refused, nothing written.
    before = snapshot(engine)
    err = problem(client.post(f"/v1/invoices/{later['id']}/payments", json={
        "method": "store_credit", "amount_minor": 11281, "currency": "EUR"}),
        409, "insufficient_store_credit")
    assert err["balance_minor"] == 11280
    assert snapshot(engine) == before

    api.pay(later, 11280, method="store_credit")
    card = api.pay(later, 10720)
    wallet = api.get(wallet_url)
    assert wallet["balance_minor"] == 0
    assert [(t["kind"], t["amount_minor"], t["balance_after_minor"])
            for t in wallet["transactions"]] == [
        ("refund", 14280, 14280), ("spend", -3000, 11280), ("spend", -11280, 0)]
    assert api.get(f"/v1/invoices/{later['id']}")["status"] == "paid"
    # A customer without any wallet cannot pay by store credit either.
    other = api.customer("Nobody")
    bill = api.invoice(other["id"], [{"description": "Pen", "quantity": 1,
                                      "unit_price_minor": 100, "tax_rate": "0"}])
    problem(client.post(f"/v1/invoices/{bill['id']}/payments", json={
        "method": "store_credit", "amount_minor": 100, "currency": "EUR"}),
        409, "insufficient_store_credit")

    # Refunding the later invoice in full: 142.80 store credit goes back to the wallet, the
    # card part to the card.
    back = api.refund(later["id"], {"kind": "full", "reason": "not_as_described"})
    dest = sorted((t["destination"], t["amount_minor"]) for t in back["tenders"])
    assert dest == [("original_payment", 10720), ("store_credit", 3000),
                    ("store_credit", 11280)]
    assert api.get(wallet_url)["balance_minor"] == 14280
    assert api.get(f"/v1/payments/{card['id']}")["refunded_minor"] == 10720
    tb = api.get("/v1/ledger/trial-balance?currency=EUR")
    acc = _accounts(tb, "EUR")
    assert acc["2300"]["balance_minor"] == 14280   # store credit liability = wallet balance
    assert acc["1200"]["balance_minor"] == 100     # only the unpaid pen is receivable
    assert tb["totals"][0]["balanced"]


def _walk(client, path: str, extra: str = "") -> tuple[list[str], list[dict]]:
    ids, pages, cursor = [], [], None
    for _ in range(20):
        url = f"{path}?limit=2{extra}" + (f"&starting_after={cursor}" if cursor else "")
        resp = client.get(url)
        assert resp.status_code == 200, resp.text
        page = resp.json()
        pages.append(page)
        ids += [row["id"] for row in page["data"]]
        if not page["has_more"]:
            assert page["next_cursor"] is None
            return ids, pages
        assert page["next_cursor"] == page["data"][-1]["id"]
        cursor = page["next_cursor"]
    raise AssertionError("pagination did not end")




@pytest.mark.parametrize("path", ["/v1/invoices", "/v1/refunds", "/v1/payments",
                                  "/v1/customers"])
def test_list_items_are_objects(client, api, paid_invoice, path):
    api.refund(paid_invoice["invoice"]["id"], {"kind": "full", "reason": "goodwill"})
    page = client.get(f"{path}?limit=5").json()
    assert len(page["data"]) == 1 and isinstance(page["data"][0], dict), page["data"]
    assert page["data"][0]["id"].split("_")[0] in ("inv", "re", "pay", "cus")


def test_cursor_pagination_over_ledger_entries(client, api):
    """The paging mechanics on a list whose items render correctly today."""
    cus = api.customer()
    created = [api.invoice(cus["id"], [{"description": f"Item {i}", "quantity": 1,
                                        "unit_price_minor": 1000 + i, "tax_rate": "0"}])["id"]
               for i in range(5)]
    ids, pages = _walk(client, "/v1/ledger/entries")
    assert [len(p["data"]) for p in pages] == [2, 2, 1]
    assert len(ids) == len(set(ids)) == 5 and ids == sorted(ids)
    assert [e["object_id"] for e in (row for p in pages for row in p["data"])] == created
    one, _ = _walk(client, "/v1/ledger/entries", extra=f"&object_id={created[2]}")
    assert len(one) == 1


def test_cursor_pagination_over_invoices_and_refunds(client, api):
    cus = api.customer()
    invoices, refunds = [], []
    for i in range(5):
        inv = api.invoice(cus["id"], [{"description": f"Item {i}", "quantity": 1,
                                       "unit_price_minor": 1000 + i, "tax_rate": "0"}])
        api.pay(inv, method="cash")
        invoices.append(inv["id"])
        refunds.append(api.refund(inv["id"], {"kind": "amount", "amount_minor": 100 + i,
                                              "reason": "goodwill"})["id"])

    for path, created in (("/v1/invoices", invoices), ("/v1/refunds", refunds)):
        ids, pages = _walk(client, path)
        assert [len(p["data"]) for p in pages] == [2, 2, 1]
        assert len(ids) == len(set(ids)) == 5          # no duplicates
        assert set(ids) == set(created)                # no gaps
        assert ids == sorted(ids)                      # one stable order
    amounts = [r["amount_minor"] for r in client.get("/v1/refunds?limit=200").json()["data"]]
    assert sorted(amounts) == [100, 101, 102, 103, 104]

    # A filter narrows the walk; a page that ends exactly at the last row says has_more false.
    ids, pages = _walk(client, "/v1/refunds", extra=f"&invoice_id={invoices[0]}")
    assert ids == [refunds[0]] and len(pages) == 1
    four = client.get("/v1/invoices?limit=4").json()
    assert four["has_more"] is True and len(four["data"]) == 4
    last = client.get(f"/v1/invoices?limit=4&starting_after={four['next_cursor']}").json()
    assert last == {"object": "list", "data": last["data"], "has_more": False,
                    "next_cursor": None} and len(last["data"]) == 1
    assert client.get("/v1/invoices?limit=0").status_code == 422
    assert client.get("/v1/invoices?limit=201").status_code == 422


def test_openapi_lists_every_v1_route_and_docs_answer(client):
    spec = client.get("/openapi.json")
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    routes = {("/v1" + r.path, m.lower()) for router in ROUTERS for r in router.routes
              if isinstance(r, APIRoute) for m in r.methods}
    assert len(routes) >= 15
    documented = {(p, m) for p, ops in paths.items() for m in ops if p.startswith("/v1/")}
    assert routes == documented
    for must in ("/v1/customers", "/v1/invoices", "/v1/invoices/{invoice_id}/payments",
                 "/v1/invoices/{invoice_id}/refunds", "/v1/invoices/{invoice_id}/refunds/preview",
                 "/v1/refunds", "/v1/refunds/{refund_id}", "/v1/ledger/trial-balance",
                 "/v1/reports/revenue", "/v1/customers/{customer_id}/store-credit/{currency}"):
        assert must in paths, must
    docs = client.get("/docs")
    assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]
    assert "openapi.json" in docs.text
