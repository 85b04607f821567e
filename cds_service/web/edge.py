"""JSON in and out at the HTTP edge: the body read (media type, size, strict JSON), responses and
errors as JSON (OperationOutcome), and the CORS headers every response carries."""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from .. import fastjson
from ..memo import Memo
from ..protocol.errors import ProtocolError, operation_outcome
from ..record.fhir_types import decode_body

JSON_TYPES = ("application/json", "application/fhir+json")
CHALLENGE = 'Bearer realm="cds-services"'  # RFC 7235 3.1: a 401 says which scheme; never why
# (scheme, Host) -> the URL werkzeug builds from them; bounded: the Host header is the caller's.
_HOST_URLS: Memo[tuple[str, str], str] = Memo(64)


def base_url(public_base_url: str | None) -> str:
    """Where the caller reached this service, without the final slash: `public_base_url` when set,
    else the request's scheme and host (`request.host_url`). Worked out once per scheme and host:
    werkzeug builds host_url anew on every request, as an IRI (percent-decoding, IDNA)."""
    if public_base_url:
        return public_base_url
    return _HOST_URLS.get((request.scheme, request.host), lambda: request.host_url.rstrip("/"))


def json_response(body: Any, status: int = 200) -> Response:
    return Response(fastjson.dumps(body), status=status, mimetype="application/json")


def json_body() -> Any:
    mimetype = request.mimetype or ""
    if mimetype not in JSON_TYPES:
        raise ProtocolError(415, None, f"Content-Type must be application/json, got '{mimetype or 'none'}'")
    raw = request.get_data(cache=False)
    limit = request.max_content_length
    # A chunked body (no Content-Length) is cut at the limit without a word (werkzeug): more of it
    # left means too large.
    chunked = limit is not None and request.content_length is None and len(raw) >= limit
    if chunked and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge(f"the body is larger than {limit} bytes")
    body = decode_body(raw)  # one pass, the Observation bundles typed; None: parsed as before
    if body is not None:
        return body
    try:
        return fastjson.loads(raw)
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, json.JSONDecodeError):
            detail = f" ({exc.msg} at line {exc.lineno} column {exc.colno})"
        else:
            detail = f" ({exc})" if isinstance(exc, ValueError) else " (nested too deeply)"
        raise ProtocolError(400, None, f"body is not valid JSON{detail}") from None


def unauthorized() -> Response:
    """401 with an OperationOutcome that says only that authentication is required, and the challenge."""
    response = json_response(operation_outcome(401, "authentication required"), 401)
    response.headers["WWW-Authenticate"] = CHALLENGE
    return response


def install_errors(app: Flask, log: logging.Logger) -> None:
    """Every error as a JSON OperationOutcome: a client's mistake with its status, anything else a 500
    that says it was logged."""

    @app.errorhandler(ProtocolError)
    def protocol_error(exc: ProtocolError) -> Response:
        return json_response(exc.body(), exc.status)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        return json_response(operation_outcome(exc.code or 500, exc.description or exc.name), exc.code or 500)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url_rule or "unmatched route")
        return json_response(operation_outcome(500, "internal error; it has been logged"), 500)


def install_cors(app: Flask, allowed: tuple[str, ...]) -> None:
    """The EHR's browser may call from the configured origins ('*': any)."""

    @app.after_request
    def cors(response: Response) -> Response:
        origin = request.headers.get("Origin")
        if "*" in allowed:
            response.headers["Access-Control-Allow-Origin"] = "*"
        elif origin and origin in allowed:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type, X-Request-Id"
        response.headers["Access-Control-Expose-Headers"] = "X-Request-Id"
        response.headers["Access-Control-Max-Age"] = "600"
        return response
