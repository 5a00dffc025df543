"""The SQLite store: schema, append-only raw records, derived verdicts, queries, export."""
