"""Alembic migrations of the store. Applied by `cds-service migrate` and at service start."""
