"""Persistence for StageCoach: SQLModel tables, Alembic migrations and data access functions.

Data access functions take a ``Session`` plus keyword-only arguments, never commit (the caller
owns the transaction, see ``storage.db.transaction``) and return None when reading a row that
does not exist.
"""
