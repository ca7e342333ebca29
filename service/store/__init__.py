"""Persistence: SQLAlchemy 2 database (SQLite WAL by default, PostgreSQL by URL) and the
content-addressed artifact folder."""
