"""The baseline for bench/http.py: the least a CDS service can do. It parses the same JSON body and
answers {"cards": []}, under the same gunicorn settings as the real service."""

from __future__ import annotations

import json

from flask import Flask, Response, request

app = Flask(__name__)


@app.post("/cds-services/<service_id>")
def call(service_id: str) -> Response:
    json.loads(request.get_data(cache=False))
    return Response('{"cards":[]}', mimetype="application/json")
