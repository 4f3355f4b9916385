"""Storage: SQL metadata (SQLite WAL by default, PostgreSQL by URL) and the artifact store."""
