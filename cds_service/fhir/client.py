"""Fetch prefetch queries from the EHR's FHIR server: in parallel, each call with a timeout, all of
them within one deadline, bounded paging that never leaves the allow-listed base URL, and no
redirects. The access token is sent only to that base URL, on each request, and is never logged.

Connections to a server are kept alive and reused across hook calls (one session per server and
process): a new TCP (and TLS) connection per query per call cost more CPU than the call itself.

One slow server must not starve the others (issue 28): each allow-listed server has its own lane
(session, thread budget and circuit breaker); a fetch is abandoned at the call's deadline, its
socket shut down whatever phase it is in (a server trickling a byte a second never trips a
per-read timeout); and a server whose calls keep running out of time is skipped for a while, its
calls answered at once with the data-gap card (see breaker.py)."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from http.cookiejar import DefaultCookiePolicy
from typing import Any

import requests

from .. import fastjson, metrics, tracing
from ..config import FhirSettings
from ..deadline import WATCHDOG
from ..jsonutil import items
from .breaker import Breaker
from .sockets import Abandon, DeadlineAdapter, abandoning, current_abandoned

log = logging.getLogger(__name__)


SLOW = frozenset({"timeout", "deadline"})  # what the breaker counts against a server


@dataclass(slots=True)
class FetchResult:
    key: str
    resources: list[Mapping[str, Any]] = field(default_factory=list)
    error: str | None = None
    reason: str | None = None  # a short, fixed code for metrics: timeout, http_status, ...
    seconds: float = 0.0


@dataclass(slots=True)
class _Lane:
    """One allow-listed server's share of this process: its session, threads and breaker."""

    session: requests.Session
    pool: ThreadPoolExecutor
    breaker: Breaker


@dataclass(frozen=True, slots=True)
class _Fetch:
    """One prefetch query to fetch: where, with what, and since when (the call's deadline runs from `started`)."""

    session: requests.Session
    auth: dict[str, str]
    base: str
    key: str
    query: str
    started: float


class FhirFetcher:
    """One per app; owns one lane (session, thread pool, breaker) per allow-listed server."""

    def __init__(
        self, timeout: float, deadline: float, max_pages: int, max_bytes: int, workers_per_server: int = 16
    ) -> None:
        self.timeout = timeout
        self.deadline = deadline
        self.max_pages = max_pages
        self.max_bytes = max_bytes
        self._workers = workers_per_server
        self._lanes: dict[str, _Lane] = {}
        self._lanes_lock = threading.Lock()
        self._pid = os.getpid()

    @classmethod
    def configured(cls, fhir: FhirSettings) -> FhirFetcher:
        """The fetcher the configuration's `fhir:` section describes."""
        return cls(fhir.timeout_seconds, fhir.deadline_seconds, fhir.max_pages, fhir.max_response_bytes)

    def fetch_all(self, base_url: str, queries: Mapping[str, str], token: str | None) -> dict[str, FetchResult]:
        started = time.monotonic()
        lane = self._lane(base_url)
        if not lane.breaker.allow():
            wait_s = lane.breaker.open_seconds
            error = f"the FHIR server was too slow on its last calls; not asked for up to {wait_s:g} s"
            results = {key: FetchResult(key, error=error, reason="circuit_open") for key in queries}
        else:
            results = self._fetch_in_lane(lane, base_url, queries, token, started)
            lane.breaker.record(slow=any(r.reason in SLOW for r in results.values()))
        for result in results.values():
            metrics.FHIR_FETCH_SECONDS.labels("failed" if result.error else "ok").observe(result.seconds)
            if result.error:
                metrics.FHIR_FETCH_FAILURES.labels(result.reason or "other").inc()
        return results

    def _fetch_in_lane(
        self, lane: _Lane, base_url: str, queries: Mapping[str, str], token: str | None, started: float
    ) -> dict[str, FetchResult]:
        auth = {"Authorization": f"Bearer {token}"} if token else {}
        holders = {key: Abandon() for key in queries}
        fetches = {key: _Fetch(lane.session, auth, base_url, key, query, started) for key, query in queries.items()}
        fetch_one = tracing.in_this_context(self._fetch_one)  # each query's span under the hook call's
        futures = {lane.pool.submit(fetch_one, fetch, holders[key]): key for key, fetch in fetches.items()}
        done, _ = wait(futures, timeout=self.deadline)
        results = {}
        for future, key in futures.items():
            if future in done:
                results[key] = future.result()
            else:
                future.cancel()
                holders[key].abandon()  # its socket is shut down: the lane's thread is free again at once
                error = f"no answer within the {self.deadline:g} s deadline"
                results[key] = FetchResult(key, error=error, reason="deadline", seconds=self.deadline)
        return results

    def _session(self, base_url: str) -> requests.Session:
        return self._lane(base_url).session

    def _lane(self, base_url: str) -> _Lane:
        """This process's lane for an allow-listed server (a forked worker makes its own: the
        parent's sockets and threads are not its to use)."""
        with self._lanes_lock:
            if self._pid != os.getpid():
                self._lanes, self._pid = {}, os.getpid()
            lane = self._lanes.get(base_url)
            if lane is None:
                pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="fhir-fetch")
                lane = self._lanes[base_url] = _Lane(_server_session(base_url, self._workers), pool, Breaker(base_url))
            return lane

    def _fetch_one(self, fetch: _Fetch, holder: Abandon) -> FetchResult:
        result = FetchResult(fetch.key)
        token = WATCHDOG.arm(max(self.deadline - (time.monotonic() - fetch.started), 0.0), holder.abandon)
        try:
            with abandoning(holder):
                self._pages(fetch, result)
        except FetchError as exc:
            result.error, result.reason = str(exc), exc.reason
        finally:
            WATCHDOG.disarm(token)
        if holder.abandoned and result.error:
            result.error, result.reason = f"no answer within the {self.deadline:g} s deadline", "deadline"
        result.seconds = time.monotonic() - fetch.started
        log.debug(
            "fhir fetch key=%s resources=%d seconds=%.3f error=%s",
            fetch.key,
            len(result.resources),
            result.seconds,
            result.error,
        )
        return result

    def _pages(self, fetch: _Fetch, result: FetchResult) -> None:
        session, auth, base, query, started = fetch.session, fetch.auth, fetch.base, fetch.query, fetch.started
        url = f"{base}/{query}"
        for _page in range(self.max_pages):
            remaining = self.deadline - (time.monotonic() - started)
            if remaining <= 0:
                result.error, result.reason = "deadline reached while paging", "deadline"
                return
            body = self._get_json(session, auth, url, min(self.timeout, remaining))
            if body.get("resourceType") == "OperationOutcome":
                result.error, result.reason = (
                    "the FHIR server answered with an OperationOutcome",
                    "operation_outcome",
                )
                return
            if body.get("resourceType") != "Bundle":
                result.resources.append(body)
                return
            result.resources.extend(  # an OperationOutcome entry says "no matches": not data
                e["resource"]
                for e in items(body.get("entry"))
                if isinstance(e, Mapping)
                and isinstance(e.get("resource"), Mapping)
                and e["resource"].get("resourceType") != "OperationOutcome"
            )
            if "_count=" in query:
                return  # the template asked for the newest N: the first page is the answer
            next_url = _next_link(body)
            if next_url is None:
                return
            url = next_url
            if not url.startswith(base + "/") and not url.startswith(base + "?"):
                result.error = "a paging link pointed outside the allow-listed server and was not followed"
                result.reason = "off_server_link"
                return

    def _get_json(self, session: requests.Session, auth: dict[str, str], url: str, timeout: float) -> dict[str, Any]:
        try:
            try:
                raw = self._get(session, auth, url, timeout)
            except requests.ConnectionError as exc:
                if isinstance(exc, requests.Timeout) or current_abandoned():
                    raise
                # Most often a kept-alive connection the server closed as it was reused: a GET is safe
                # to send once more, on a new connection. (A timeout is not retried: it took its time.)
                raw = self._get(session, auth, url, timeout)
        except requests.Timeout as exc:
            raise FetchError(f"the FHIR server did not answer within {timeout:.2g} s", "timeout") from exc
        except (requests.RequestException, OSError) as exc:
            raise FetchError(f"the FHIR server could not be reached ({type(exc).__name__})", "connection") from exc
        try:
            body = fastjson.loads(raw)  # orjson, or the standard parser where orjson refuses
        except (ValueError, RecursionError) as exc:
            raise FetchError("the FHIR server's answer was not JSON", "not_json") from exc
        if not isinstance(body, dict):
            raise FetchError("the FHIR server's answer was not a FHIR resource", "not_fhir")
        return body

    def _get(self, session: requests.Session, auth: dict[str, str], url: str, timeout: float) -> bytes:
        """The body of a 200 answer, read up to max_bytes; FetchError for another status or a larger one."""
        with (
            tracing.fhir_get(url) as traced,
            session.get(url, headers=auth, timeout=timeout, allow_redirects=False, stream=True) as response,
        ):
            traced.set_attribute("http.response.status_code", response.status_code)
            if response.status_code != 200:
                raise FetchError(f"the FHIR server answered HTTP {response.status_code}", "http_status")
            chunks, size = [], 0
            for chunk in response.iter_content(65536):
                size += len(chunk)
                if size > self.max_bytes:
                    raise FetchError(f"the FHIR server's answer was larger than {self.max_bytes} bytes", "too_large")
                chunks.append(chunk)
            traced.set_attribute("http.response.body.size", size)
        return b"".join(chunks)


def _server_session(base_url: str, pool_size: int) -> requests.Session:
    """A session shared by every call to one server, so it holds nothing that belongs to a call: the
    token goes on each request, and no cookie is ever kept (a server's cookie must not follow one
    patient's call into another's). The environment's proxy and CA settings (HTTPS_PROXY, NO_PROXY,
    REQUESTS_CA_BUNDLE) are read once here instead of at every request; ~/.netrc is never used, so no
    credential but the EHR's token reaches a FHIR server."""
    session = requests.Session()
    settings = session.merge_environment_settings(base_url, {}, None, None, None)
    session.proxies.update(settings["proxies"])
    session.verify = settings["verify"]
    session.trust_env = False
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    session.headers["Accept"] = "application/fhir+json, application/json"
    session.mount(base_url, DeadlineAdapter(pool_connections=1, pool_maxsize=pool_size))
    return session


class FetchError(Exception):
    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def _next_link(bundle: Mapping[str, Any]) -> str | None:
    for link in items(bundle.get("link")):
        url = link.get("url") if isinstance(link, Mapping) and link.get("relation") == "next" else None
        if isinstance(url, str):
            return url
    return None
