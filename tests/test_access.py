"""Access is declared at each view (access.py): every route of the app says whether it needs the
EHR's JWT or is open, and only the probes and the rule pages are open."""

from __future__ import annotations

from cds_service.access import Access


def test_every_view_declares_its_access_and_only_probes_and_rule_pages_are_open(make_app):
    issuer = {"iss": "https://ehr.example", "jwks_url": "http://127.0.0.1:9/jwks.json"}  # never asked: no token
    app = make_app({"security": {"trusted_issuers": [issuer]}})
    access = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        declared = getattr(app.view_functions[rule.endpoint], "access", None)
        assert isinstance(declared, Access), f"{rule.rule} declares no access"
        access[rule.rule] = declared
    assert {path for path, a in access.items() if a is Access.OPEN} == {
        "/healthz",
        "/readyz",
        "/healthz/store",
        "/rules",
        "/rules/<rule_id>",
    }
    client = app.test_client()
    for path in ("/cds-services", "/nowhere"):  # a token asked for, and an unknown path asks for one too
        assert client.get(path).status_code == 401
    assert client.post("/cds-services/magnesium-order-sign/feedback", json={}).status_code == 401
    assert client.get("/healthz").status_code == 200 and client.get("/rules").status_code == 200
