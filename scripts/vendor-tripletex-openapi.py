#!/usr/bin/env python3
"""Vendor the subset of Tripletex's official OpenAPI spec that rbtx writes to.

Usage: scripts/vendor-tripletex-openapi.py [SPEC] > crates/tripletex-openapi/openapi-subset.json

SPEC defaults to ../shared/reference/tripletex/openapi.json (Tripletex's published spec, unchanged).
The output keeps, for each operation rbtx or its sandbox uses, the request body schema and the query
parameters, plus every component schema they reach. Two changes are made, both to match what the real
server does rather than what the spec says:
  * every object schema gets `additionalProperties: false`, because Tripletex answers an unknown field
    with 422/16000 "Feltet eksisterer ikke i objektet.";
  * nothing else: no field is made required (the spec marks none; the sandbox adds the empirical rules).
"""
import hashlib
import json
import sys

OPERATIONS = [
    ("POST", "/token/session/:create"),
    ("PUT", "/token/session/:create"),
    ("GET", "/customer"), ("POST", "/customer"), ("PUT", "/customer/{id}"),
    ("POST", "/customer/list"), ("PUT", "/customer/list"),
    ("GET", "/supplier"), ("POST", "/supplier"), ("PUT", "/supplier/{id}"),
    ("POST", "/supplier/list"), ("PUT", "/supplier/list"),
    ("GET", "/product"), ("POST", "/product"), ("PUT", "/product/{id}"),
    ("POST", "/product/list"), ("PUT", "/product/list"),
    ("GET", "/product/unit"),
    ("GET", "/employee"),
    ("GET", "/ledger/vatType"),
    ("GET", "/country"), ("GET", "/currency"),
    ("GET", "/ledger/account"), ("PUT", "/ledger/account/{id}"),
    ("GET", "/order"), ("POST", "/order"), ("PUT", "/order/{id}"),
    ("PUT", "/order/{id}/:invoice"),
    ("GET", "/invoice"), ("POST", "/invoice"),
    ("PUT", "/invoice/{id}/:createCreditNote"),
]


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else "../shared/reference/tripletex/openapi.json"
    raw = open(path, "rb").read()
    spec = json.loads(raw)
    schemas = spec["components"]["schemas"]
    keep: set[str] = set()

    def reach(node) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "$ref":
                    name = v.rsplit("/", 1)[-1]
                    if name not in keep:
                        keep.add(name)
                        reach(schemas[name])
                else:
                    reach(v)
        elif isinstance(node, list):
            for v in node:
                reach(v)

    operations = {}
    for method, p in OPERATIONS:
        op = spec["paths"][p][method.lower()]
        body = None
        if "requestBody" in op:
            content = op["requestBody"]["content"]
            media = next(iter(content.values()))
            body = media["schema"]
            reach(body)
        params = {}
        for prm in op.get("parameters", []):
            if prm.get("in") == "query":
                params[prm["name"]] = {"schema": prm.get("schema", {}), "required": prm.get("required", False)}
        operations[f"{method} {p}"] = {"operationId": op.get("operationId"), "body": body, "query": params}

    out_schemas = {}
    for name in sorted(keep):
        s = json.loads(json.dumps(schemas[name]))
        if s.get("type") == "object" and "properties" in s:
            s["additionalProperties"] = False
        out_schemas[name] = s

    doc = {
        "provenance": {
            "source": "Tripletex API v2 OpenAPI spec (https://tripletex.no/v2/openapi.json), via ../shared/reference/tripletex/openapi.json",
            "info_version": spec["info"]["version"],
            "sha256": hashlib.sha256(raw).hexdigest(),
            "generated_by": "scripts/vendor-tripletex-openapi.py",
            "changes": "subset of operations and reachable schemas; additionalProperties=false on object schemas",
        },
        "operations": operations,
        "components": {"schemas": out_schemas},
    }
    json.dump(doc, sys.stdout, indent=1, sort_keys=False, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
