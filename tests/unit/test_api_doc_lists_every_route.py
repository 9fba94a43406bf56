"""docs/api.md lists every /v1 route the app serves, with the permission it really needs, and
no route that does not exist: the integrators' table cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

from payback.access.domain import AUTHENTICATED, ROUTE_PERMISSIONS
from payback.api.app import create_app
from payback.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
ROW = re.compile(r"^\| `(GET|POST|PUT|PATCH|DELETE) (/v1/[^`]*)` \| ([^|]+) \|", re.M)


def test_api_doc_endpoint_table_matches_the_app():
    spec = create_app(Settings(database_url="sqlite://")).openapi()
    served = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops
              if p.startswith("/v1/")}
    documented = {(m, p): perm.strip() for m, p, perm in ROW.findall(DOC.read_text())}
    assert served - set(documented) == set(), "routes missing from docs/api.md"
    assert set(documented) - served == set(), "docs/api.md lists routes that do not exist"
    for route, perm in documented.items():
        expected = ROUTE_PERMISSIONS[route]
        shown = "any authenticated caller" if expected == AUTHENTICATED else f"`{expected}`"
        assert perm == shown, (route, perm, shown)
