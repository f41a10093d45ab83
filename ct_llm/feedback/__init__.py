"""Feedback: the event schema, idempotent ingestion and per-tenant statistics."""
