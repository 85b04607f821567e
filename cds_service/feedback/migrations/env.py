"""Alembic environment: runs on the connection handed over by `cds_service.feedback.migrate`.

A new revision, from the repository root:
    alembic -c /dev/null -x url=sqlite:///data/feedback.sqlite3 revision -m "..."  (script_location set below)
is rarely needed by hand: write the upgrade and downgrade, then `tests/test_store.py` checks that the
migrated schema equals the models.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from cds_service.feedback.migrations.tables import store_metadata

config = context.config
connection = config.attributes.get("connection")

if connection is None:  # the alembic command line: a URL from -x url=...
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("alembic: give the database with -x url=...")
    with create_engine(url).connect() as fresh:
        context.configure(connection=fresh, target_metadata=store_metadata(), render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=store_metadata(), render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
