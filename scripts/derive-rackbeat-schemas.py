#!/usr/bin/env python3
"""Writes schemas/rackbeat/<resource>.schema.json: the shape of Rackbeat's records, as far as it is
known. Rackbeat publishes no schema, so each is the union of every sample record seen (the reference
samples in ../shared/reference/rackbeat/samples and the pack's own under mappings/*/samples), plus the
fields the API notes name without a sample (NOTED below, each with where it comes from). The schemas
are open (`additionalProperties: true`): `rbtx validate` warns, not fails, on a field they lack.

    scripts/derive-rackbeat-schemas.py [REFERENCE_SAMPLES_DIR]

tests/pack.rs checks every sample in the pack against the committed schemas."""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared/reference/rackbeat/samples"
OUT = ROOT / "schemas/rackbeat"

# Envelope key of a single record (or of a list) → the resource's path.
RESOURCES = {
    "product": "products", "products": "products",
    "lot": "lots", "lots": "lots",
    "customer": "customers", "customers": "customers",
    "supplier": "suppliers", "suppliers": "suppliers",
    "customer_invoice": "customer-invoices", "customer_invoices": "customer-invoices",
}

# Fields the API notes (../shared/reference/rackbeat/API-NOTES.md) or the pack's mappings name and no
# sample shows, each with why it is believed to exist. A dotted path reaches into objects, `[]` into a
# list's items.
NOTED = {
    "customers": {
        "company_name": ({"type": "string"}, "the 2018 spec's name of `name`; customer.yaml reads it as a fallback"),
    },
    "suppliers": {
        "name": ({"type": "string"}, "(?) customers today say `name`; supplier.yaml reads it before `company_name`"),
        "is_barred": ({"type": "boolean"}, "(?) as customers and products carry it"),
    },
    "customer-invoices": {
        "customer.payment_terms": ({"type": "object", "properties": {"maturity_days": {"type": "integer"}},
                                    "additionalProperties": True},
                                   "(?) the embedded customer as GET /customers/{n} gives it, with its terms"),
        "lines.[].item": ({"type": "object", "properties": {"group": {"type": ["object", "integer"],
                                                                      "properties": {"number": {"type": "integer"}}}},
                           "additionalProperties": True},
                          "API notes: order lines expose `item{…}`; the VAT fallback reads its group"),
        "is_creditnote": ({"type": "boolean"}, "API notes, 'Booked invoices and credit notes'"),
        "invoice_date": ({"type": "string"}, "API notes, 'Booked invoices and credit notes'"),
        "credited_invoice_number": ({"type": ["string", "integer"]},
                                    "(?) where a credit note names the invoice it credits; unconfirmed"),
        "vat_zone": ({"type": "string"}, "API notes: the document's VAT zone, else the customer's"),
    },
}


def type_of(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def merge(schema, value):
    t = type_of(value)
    types = set(schema.get("type", []) if isinstance(schema.get("type"), list) else [schema["type"]] if "type" in schema else [])
    types.add(t)
    # A whole number is also a number: one JSON type is enough.
    if "number" in types:
        types.discard("integer")
    schema["type"] = sorted(types) if len(types) > 1 else next(iter(types))
    if t == "object":
        props = schema.setdefault("properties", {})
        for k, v in value.items():
            merge(props.setdefault(k, {}), v)
        schema["additionalProperties"] = True
    elif t == "array":
        items = schema.setdefault("items", {})
        for v in value:
            merge(items, v)
    return schema


def records(doc):
    """(resource, record) for each record of a sample: a single-object envelope, or a list's."""
    if not isinstance(doc, dict):
        return
    for key, value in doc.items():
        resource = RESOURCES.get(key)
        if resource is None:
            continue
        for r in value if isinstance(value, list) else [value]:
            if isinstance(r, dict):
                yield resource, r


def main():
    files = sorted(REFERENCE.glob("*.json")) + sorted(ROOT.glob("mappings/*/samples/*.json"))
    schemas, seen = {}, {}
    for f in files:
        try:
            doc = json.loads(f.read_text(encoding="utf-8"))
        except ValueError:
            continue
        for resource, record in records(doc):
            merge(schemas.setdefault(resource, {}), record)
            seen.setdefault(resource, set()).add(f.name)
    OUT.mkdir(parents=True, exist_ok=True)
    for resource, schema in sorted(schemas.items()):
        props = schema.setdefault("properties", {})
        for path, (s, why) in NOTED.get(resource, {}).items():
            node = schema
            *parents, last = path.split(".")
            for step in parents:
                node = node.setdefault("items", {}) if step == "[]" else node.setdefault("properties", {}).setdefault(step, {})
            node.setdefault("properties", {}).setdefault(last, dict(s, description=why))
        out = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": f"Rackbeat {resource} record (as seen)",
            "description": "Derived by scripts/derive-rackbeat-schemas.py from the samples "
                           + ", ".join(sorted(seen[resource]))
                           + ". Open: Rackbeat may send fields no sample showed.",
            **schema,
        }
        (OUT / f"{resource}.schema.json").write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"{resource}: {len(props)} fields from {len(seen[resource])} samples")


if __name__ == "__main__":
    main()
