"""The demo's built-in reference data: customers' countries and names, products and prices,
tax rates in force in 2026, exchange rates for shelf prices, refund notes, and the demo
merchant's refund policy. Plain data, no I/O: ``payback.demo`` plays it through the services.

Invariants: changing anything here changes what a given seed produces (the demo is
deterministic from this data and the seed); the policy must pass its preset's statutory floor.
"""

from __future__ import annotations

from datetime import UTC, datetime

#: The demo year: customers from the first day, invoices issued between the next two instants,
#: nothing after the last.
YEAR_START = datetime(2026, 1, 2, 8, 0, tzinfo=UTC)
INVOICES_FROM = datetime(2026, 1, 12, 8, 0, tzinfo=UTC)
INVOICES_UNTIL = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
YEAR_END = datetime(2026, 12, 31, 20, 0, tzinfo=UTC)

# country -> (currency, locale, region tax key(s), first names, last names, companies)
COUNTRIES = {
    "DE": ("EUR", "de_DE", ["DE"], ["Lena", "Jonas", "Mia", "Felix", "Hannah", "Lukas"],
           ["Hoffmann", "Schneider", "Becker", "Wagner", "Schulz"],
           ["Bergmann Feinkost GmbH", "Nordlicht Design GmbH"]),
    "GB": ("GBP", "en_GB", ["GB"], ["Oliver", "Amelia", "Harry", "Isla", "George", "Ava"],
           ["Thompson", "Patel", "Evans", "Walker", "Hughes"],
           ["Harrow & Finch Ltd", "Kestrel Studio Ltd"]),
    "US": ("USD", "en_US", ["US-CA", "US-NY"], ["Emma", "Liam", "Sophia", "Noah", "Ava", "Mason"],
           ["Johnson", "Garcia", "Miller", "Davis", "Rodriguez"],
           ["Bluebird Coffee Co.", "Summit Outfitters Inc."]),
    "JP": ("JPY", "ja_JP", ["JP"], ["Yuki", "Haruto", "Sakura", "Ren", "Aoi", "Sota"],
           ["Tanaka", "Suzuki", "Takahashi", "Watanabe", "Ito"],
           ["Kobayashi Shoten K.K.", "Sakura Works K.K."]),
    "FR": ("EUR", "fr_FR", ["FR"], ["Chloé", "Louis", "Camille", "Hugo", "Léa"],
           ["Martin", "Bernard", "Dubois", "Moreau"], ["Atelier Lumière SARL"]),
    "NL": ("EUR", "nl_NL", ["NL"], ["Sanne", "Daan", "Fleur", "Bram", "Noor"],
           ["de Jong", "Jansen", "Visser", "Bakker"], ["Van Dijk Interieur B.V."]),
    "ES": ("EUR", "es_ES", ["ES"], ["Lucía", "Hugo", "Martina", "Pablo"],
           ["García", "Fernández", "López", "Martínez"], ["Olivares Diseño S.L."]),
    "IT": ("EUR", "it_IT", ["IT"], ["Giulia", "Leonardo", "Sofia", "Matteo"],
           ["Rossi", "Russo", "Ferrari", "Esposito"], ["Bottega Verde S.r.l."]),
}
#: The first four customers cover the four currencies; then the mix of a European shop.
COUNTRY_CYCLE = ("DE", "GB", "US", "JP", "FR", "DE", "NL", "US", "GB", "ES", "JP", "IT")

#: Tax rates by region and product tax class (the rates in force in 2026).
TAX = {
    "DE": {"standard": "0.19", "food": "0.07", "books": "0.07", "child_seat": "0.19"},
    "FR": {"standard": "0.20", "food": "0.055", "books": "0.055", "child_seat": "0.20"},
    "NL": {"standard": "0.21", "food": "0.09", "books": "0.09", "child_seat": "0.21"},
    "ES": {"standard": "0.21", "food": "0.10", "books": "0.04", "child_seat": "0.21"},
    "IT": {"standard": "0.22", "food": "0.10", "books": "0.04", "child_seat": "0.22"},
    "GB": {"standard": "0.20", "food": "0", "books": "0", "child_seat": "0.05"},
    "US-CA": {"standard": "0.0725", "food": "0", "books": "0.0725", "child_seat": "0.0725",
              "shipping": "0"},
    "US-NY": {"standard": "0.08875", "food": "0", "books": "0.08875", "child_seat": "0.08875"},
    "JP": {"standard": "0.10", "food": "0.08", "books": "0.10", "child_seat": "0.10"},
}

# (description, sku, category, price in euro cents, tax class, max quantity)
PRODUCTS = (
    ("Espresso machine Duetto", "KIT-ESP-01", "kitchen", 24900, "standard", 1),
    ("Burr coffee grinder", "KIT-GRN-02", "kitchen", 8900, "standard", 1),
    ("Single-origin coffee beans 1 kg", "FOOD-CB-1K", "food", 1890, "food", 6),
    ("Loose-leaf green tea 250 g", "FOOD-TEA-250", "food", 990, "food", 6),
    ("Dark chocolate bar 100 g", "FOOD-CHOC-100", "food", 349, "food", 10),
    ("Stoneware mug", "HOME-MUG-01", "home", 1450, "standard", 4),
    ("Linen tea towel set", "HOME-TWL-03", "home", 2200, "standard", 3),
    ("Cast-iron skillet 26 cm", "KIT-SKL-26", "kitchen", 5900, "standard", 1),
    ("The Home Barista (hardcover)", "BOOK-BAR-01", "books", 3200, "books", 2),
    ("Baking for Beginners (paperback)", "BOOK-BAK-02", "books", 1800, "books", 2),
    ("Child car seat Isofix", "KID-SEAT-01", "kids", 18900, "child_seat", 1),
    ("Wool throw blanket", "HOME-THR-01", "home", 7900, "standard", 2),
    ("Noise-cancelling headphones", "ELEC-HP-01", "electronics", 19900, "standard", 1),
    ("Smart kettle 1.7 l", "KIT-KTL-17", "kitchen", 6900, "standard", 1),
)
EURO_PRICE = {p[1]: p[3] for p in PRODUCTS}
SHIPPING = (("Standard shipping", 490), ("Express shipping", 1290))
FREE_SHIPPING_FROM = 15000  # euro cents of items
FX = {"EUR": (1, 1), "GBP": (86, 100), "USD": (108, 100), "JPY": (162, 100)}  # per euro cent



NOTES = {
    "full": [("duplicate", "Charged twice at checkout"),
             ("requested_by_customer", "Order cancelled before dispatch"),
             ("fraudulent", "Cardholder did not recognise the order")],
    "amount": [("goodwill", "Price match with a competitor"),
               ("billing_error", "Wrong price applied at checkout"),
               ("goodwill", "Apology for a late delivery")],
    "lines": [("product_defective", "Arrived damaged"),
              ("not_as_described", "Colour differs from the photos"),
              ("requested_by_customer", "Returned within 30 days, unopened")],
}

# ------------------------------------------------------------------------ refund stories

#: Refund stories: name -> steps (each step is one refund at a later date).
SCENARIOS = {
    "full": ["full"], "amount": ["amount"], "lines": ["lines"], "shipping": ["shipping"],
    "to_credit": ["full_to_credit"], "lines_to_credit": ["lines_to_credit"],
    "lines_then_rest_to_credit": ["lines", "full_to_credit"],
    "amount_then_lines": ["amount", "lines_with_shipping"],
}
SCENARIO_WEIGHTS = {"full": 12, "amount": 18, "lines": 22, "shipping": 10, "to_credit": 8,
                    "lines_to_credit": 8, "lines_then_rest_to_credit": 12, "amount_then_lines": 10}
NEEDS_SHIPPING = {"shipping", "amount_then_lines"}
PAYMENT_WEIGHTS = {"unpaid": 8, "partial": 9, "installments": 6, "card": 52, "bank": 25}


# ------------------------------------------------------------------------ the demo's policy

#: The demo merchant's refund policy for the default seller: more generous than the EU preset
#: (30 days, merchant pays return shipping, 10 % bonus for store credit), with approvals: up to
#: 200.00 is auto-approved, above 500.00 approval is required and the approver must be someone
#: other than the requester (four eyes); an agent may request up to 1,000.00, an approver
#: 5,000.00. Amounts are minor units per currency (JPY has none: ¥ is its own minor unit).
DEMO_POLICY = {
    "extends": "EU-CRD",
    "id": "payback-demo",
    "version": "2026-01-01",
    "name": "Payback demo shop: 30 days, with approvals",
    "timezone": "Europe/Berlin",
    "window": {"days": 30},
    "return_shipping_payer": "merchant",
    "store_credit": {"bonus_percent": 10},
    "categories": {"custom_prints": {"excluded": True, "exclusion": "personalised"}},
    "approvals": {
        "auto_approve_up_to_minor": {"EUR": 20000, "GBP": 20000, "USD": 20000, "JPY": 30000},
        "require_approval_above_minor": {"EUR": 50000, "GBP": 50000, "USD": 50000,
                                         "JPY": 80000},
        "require_approval_reasons": ["goodwill"],
        "four_eyes_above_minor": {"EUR": 50000, "GBP": 50000, "USD": 50000, "JPY": 80000},
    },
    "role_limits_minor": {
        "agent": {"EUR": 100000, "GBP": 100000, "USD": 100000, "JPY": 160000},
        "approver": {"EUR": 500000, "GBP": 500000, "USD": 500000, "JPY": 800000},
    },
    "per_customer_limit": {"max_refunds": 5, "period_days": 90},
}

#: The staff user who requests the refunds waiting in the approval queue.
DEMO_AGENT = {"email": "agent@payback.local", "name": "Demo Agent", "role": "agent"}
#: How many refunds the demo leaves waiting for approval (fewer if too few invoices are big).
APPROVAL_QUEUE = 3
APPROVAL_NOTES = ("Customer returned the whole order, unused",
                  "Order cancelled after dispatch: goods came back unopened",
                  "Returned within 30 days: changed their mind")
