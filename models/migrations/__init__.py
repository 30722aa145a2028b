"""Alembic environment and revisions of svmon's database schema (see ``svmon.models.migrate``)."""
