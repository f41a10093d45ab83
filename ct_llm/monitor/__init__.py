"""Monitoring: the API's Prometheus metrics (in-process counters, and what the store holds, read
at scrape time), the status of a tenant's deployment (`ct-llm status`, `GET /v1/status`) and the
status page (quality over time per model version, registry timeline, eval verdicts)."""
