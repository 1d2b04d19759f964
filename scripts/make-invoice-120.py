#!/usr/bin/env python3
"""Writes mappings/rackbeat-to-tripletex/samples/customer-invoice-120-lines.json: a booked invoice
with 120 lines in a fixed pattern.

Line i (0-based) has
  item      every 7th line (i % 7 == 6) the BOM SETT-10 (child_type lot), else ITEMS[i % 5];
  quantity  (i % 9) - 1, so -1 (a credit line) and 0 occur;
  price     10 + i * 1.2345678, rounded to 7 decimals;
  discount  DISCOUNTS[i % 4] (0 means none);
  VAT rate  RATES[i % 5] percent, written as a float on odd lines (25.0).
tests/invoice_oracle.rs recomputes the expected order lines from the same rules and checks the
blessed goldens beside the sample against them.
"""
import json
from pathlib import Path

ITEMS = ["VARE-1001", "VARE-3003", "HYLLE/30 #2 B", "VARE-2001", "VARE-3001"]
DISCOUNTS = [0, 0, 5, 12.5]
RATES = [25, 25, 15, 12, 0]


def line(i):
    lot = i % 7 == 6
    rate = RATES[i % 5]
    return {
        "id": 10000 + i,
        "child_id": "SETT-10" if lot else ITEMS[i % 5],
        "child_type": "lot" if lot else "product",
        "location_id": 1,
        "name": f"Linje {i + 1:03d} – {'sett' if lot else 'vare'} æøå",
        "quantity": (i % 9) - 1,
        "line_price": round(10 + i * 1.2345678, 7),
        "discount_percentage": DISCOUNTS[i % 4],
        "vat_percentage": float(rate) if i % 2 else rate,
        "variations": [],
    }


invoice = {
    "customer_invoice": {
        "number": 20100,
        "heading": "Ordre 10100",
        "currency": "NOK",
        "currency_rate": 1.0,
        "is_booked": True,
        "booked_at": "2025-06-30T15:00:00+02:00",
        "due_date": "2025-07-14",
        "customer_id": 10001,
        "customer": {"number": 10001, "name": "Fjord Bygg AS", "vat_zone": "domestic"},
        "order_id": 10100,
        "lines": [line(i) for i in range(120)],
        "created_at": "2025-06-30T14:55:00+02:00",
        "updated_at": "2025-06-30T15:00:00+02:00",
        "self": "https://app.rackbeat.com/api/customer-invoices/20100",
    }
}
SAMPLES = Path(__file__).resolve().parent.parent / "mappings" / "rackbeat-to-tripletex" / "samples"
out = SAMPLES / "customer-invoice-120-lines.json"
out.write_text(json.dumps(invoice, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
