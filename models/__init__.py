"""Persistence: SQLModel tables (journal and projections) and the repository."""
