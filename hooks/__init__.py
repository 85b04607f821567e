"""The CDS Hooks contracts as data: JSON Schemas of the hook request, the response and feedback, and
the discovery document; read by protocol/schemas.py and the tests."""
