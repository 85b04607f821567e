"""Rule pages (`/rules`, `/rules/<id>`) and the cards that link to them: the numbers in force after a
site's overrides, the sources with their own labels, the counts from the store, no token needed, no
external asset. The same pages in a real browser: tests/test_browser.py."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

from sqlalchemy import create_engine

from cds_service.knowledge import load_knowledge

from .conftest import SCENARIOS, SERVICE_FOR, load_json, scenario_cases
from .test_operations import feedback_for
from .timing import scaled

SIGN = f"/cds-services/{SERVICE_FOR['order-sign']}"
KNOWLEDGE = load_knowledge()


class Page(HTMLParser):
    """The parts of a page the tests read: links, the elements that could load something, ids, text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []  # (href, text)
        self.loads: list[str] = []  # tags that fetch: script, img, link, iframe, ...
        self.ids: set[str] = set()
        self.text: list[str] = []
        self._href: str | None = None
        self._link_text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag in ("script", "img", "link", "iframe", "object", "embed", "video", "audio", "source"):
            self.loads.append(tag)
        if tag == "a":
            self._href, self._link_text = attrs.get("href"), []

    def handle_endtag(self, tag):
        if tag == "a" and self._href is not None:
            self.links.append((self._href, " ".join("".join(self._link_text).split())))
            self._href = None

    def handle_data(self, data):
        self.text.append(data)
        if self._href is not None:
            self._link_text.append(data)

    @property
    def words(self) -> str:
        return " ".join(" ".join(self.text).split())


def _page(client, path: str, status: int = 200) -> Page:
    response = client.get(path)
    assert response.status_code == status, response.data[:300]
    assert response.mimetype == "text/html"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    return Page(response.get_data(as_text=True))


def test_every_rule_has_a_page_listed_on_the_index(client):
    index = _page(client, "/rules")
    listed = {href.removeprefix("/rules/") for href, _ in index.links if href.startswith("/rules/")}
    assert listed == set(KNOWLEDGE.rules)
    for rule_id, spec in KNOWLEDGE.rules.items():
        page = _page(client, f"/rules/{rule_id}")
        assert spec.title in page.words and rule_id in page.words
        assert page.loads == [], "no script, image or stylesheet to fetch: the page is self-contained"
        for href, _ in page.links:  # in-page citations point at a source listed on the page
            if href.startswith("#"):
                assert href[1:] in page.ids, (rule_id, href)
        for sid in spec.sources:  # every source of the rule is listed, linked by its own citation
            source = KNOWLEDGE.sources[sid]
            assert f"source-{sid}" in page.ids
            if source.url:
                assert (source.url, " ".join(source.citation.split())) in page.links, (rule_id, sid)


def test_a_page_shows_the_thresholds_and_gating_in_force_after_the_site_config(make_app):
    app = make_app(
        {
            "rules": {"mg-high": {"parameters": {"upper_limit": 2.5}}, "renal-moderate": {"enabled": False}},
            "gating": {"mg-high": {"magnesium": {"routes": ["parenteral"]}}},
        }
    )
    client = app.test_client()
    page = _page(client, "/rules/mg-high").words
    assert "upper_limit 2.5 mg/dL (shipped 2.6)" in page
    assert "changed at this site" in page
    assert "magnesium product parenteral as-needed, long-term, one-time, short-course" in page
    assert "off at this site" in _page(client, "/rules/renal-moderate").words
    shipped = _page(make_app().test_client(), "/rules/mg-high").words
    assert "upper_limit 2.6 mg/dL" in shipped and "changed at this site" not in shipped
    index = _page(client, "/rules").words
    assert f"{len(KNOWLEDGE.rules) - 2} of {len(KNOWLEDGE.rules)} rules are on" in index  # depletion-statin ships off


def test_interaction_pages_give_each_drug_its_spacing(client):
    rule_id = "interaction-fluoroquinolone"
    drugs = [d for c in KNOWLEDGE.drug_classes.values() if c.rule == rule_id for d in c.drugs]
    assert len(drugs) >= 5
    words = _page(client, f"/rules/{rule_id}").words
    for drug in drugs:
        assert drug.name in words
        if drug.before_h is not None:
            assert f"{drug.before_h:g} h before magnesium" in words


def test_counts_come_from_the_store_by_service(make_app):
    app = make_app()
    client = app.test_client()
    cards = client.post(SIGN, json=load_json(SCENARIOS / "fq-cipro-magnesium-ordered" / "request.order-sign.json"))
    card = next(c for c in cards.get_json()["cards"] if c["source"]["topic"]["code"] == "interaction-fluoroquinolone")
    assert app.extensions["card_recorder"].flush(timeout=scaled(20))
    client.post(f"{SIGN}/feedback", json=feedback_for(card, "overridden", "doses-already-separated"))
    words = _page(client, "/rules/interaction-fluoroquinolone").words
    assert "Cards issued 1 (magnesium-order-sign 1)" in words
    assert "Overridden 1 (doses-already-separated 1)" in words
    assert "Override rate 100 %" in words


def test_a_store_that_fails_leaves_the_page_up_without_counts(make_app):
    app = make_app()
    app.extensions["feedback_store"].engine = create_engine("postgresql+psycopg://u@127.0.0.1:9/none")
    client = app.test_client()
    assert "The store is unavailable" in _page(client, "/rules/mg-high").words
    assert "store unavailable" in _page(client, "/rules").words


def test_an_unknown_rule_is_a_404_page_that_leads_back(client):
    page = _page(client, "/rules/no-such-rule", 404)
    assert "No rule with id no-such-rule" in page.words
    assert ("/rules", "the rule catalogue") in page.links


def test_pages_need_no_token_where_hooks_do(make_app):
    app = make_app({"security": {"trusted_issuers": [{"iss": "https://ehr.example.org", "jwks_url": _JWKS}]}})
    client = app.test_client()
    assert client.get("/rules/mg-high").status_code == 200
    assert client.get("/cds-services").status_code == 401


_JWKS = "https://ehr.example.org/.well-known/jwks.json"


def test_each_card_links_to_its_rule_page_under_the_public_base_url(make_app):
    body = load_json(SCENARIOS / "fq-cipro-magnesium-ordered" / "request.order-sign.json")
    public = make_app({"public_base_url": "https://cds.example.org/mg"}).test_client()
    for card in public.post(SIGN, json=body).get_json()["cards"]:
        assert card["source"]["url"] == f"https://cds.example.org/mg/rules/{card['source']['topic']['code']}"
    local = make_app().test_client()  # no public_base_url: the address the EHR called
    for card in local.post(SIGN, json=body, base_url="http://cds.internal:8080").get_json()["cards"]:
        assert card["source"]["url"] == f"http://cds.internal:8080/rules/{card['source']['topic']['code']}"


def test_card_links_are_labelled_by_their_own_source(client):
    """Every link of every golden card: its label is the citation of a source with that very URL."""
    citations_by_url: dict[str, set[str]] = {}
    for source in KNOWLEDGE.sources.values():
        if source.url:
            citations_by_url.setdefault(source.url, set()).add(source.citation)
    seen = 0
    for name, hook in scenario_cases():
        body = load_json(SCENARIOS / name / f"request.{hook}.json")
        for card in client.post(f"/cds-services/{SERVICE_FOR[hook]}", json=body).get_json()["cards"]:
            for link in card.get("links", []):
                label = link["label"].rstrip("…")
                if label.startswith("Local policy: "):  # the service's own policy opens the rule's page
                    assert link["url"].endswith(f"/rules/{card['source']['topic']['code']}"), (name, link)
                    continue
                assert any(c.startswith(label) for c in citations_by_url[link["url"]]), (name, link)
                seen += 1
    assert seen > 100


def test_rule_pages_are_counted_apart_in_metrics(client):
    from .test_operations import samples, scrape

    client.get("/rules")
    counted = samples(scrape(), "cds_http_requests_total")
    assert any(dict(k).get("endpoint") == "rule-pages" for k in counted)
    assert not any(re.search(r"/rules", dict(k).get("endpoint", "")) for k in counted)


def _page_text(client, rule_id: str) -> str:
    page = client.get(f"/rules/{rule_id}").get_data(as_text=True)
    body = page[page.index("<main") :]  # the page as read, without the stylesheet
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def test_rule_pages_speak_a_pharmacists_words(client):
    """No bracketed source keys, status codes or file names; thresholds with both bounds; the codes a rule
    matches listed; the service's own policy said as such."""
    for rule_id in KNOWLEDGE.rules:
        text = _page_text(client, rule_id)
        assert not re.search(r"\[[a-z][a-z0-9]*(-[a-z0-9]+)+\]", text), rule_id  # [service-renal-policy]
        assert not re.search(r"\b(VERIFIED|SECONDARY|UNVERIFIED|POLICY)\b|\.ya?ml\b|\.md\b", text), rule_id
        assert "Said differently" not in text and "{" not in text, rule_id
    severe = _page_text(client, "renal-severe")
    assert "Fires for renal function 20-29 mL/min" in severe
    assert "Local policy: No labelled kidney-function cut-off" in severe
    assert "SNOMED CT" in severe and "46177005" in severe and "2160-0" in severe  # dialysis code, creatinine LOINC
    assert "91637004" in _page_text(client, "myasthenia-gravis")
    assert "Fires for renal function 30-59 mL/min" in _page_text(client, "renal-moderate")
