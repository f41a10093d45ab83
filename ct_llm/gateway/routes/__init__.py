"""The routers of `ct-llm api`: chat, feedback, admin, ops (health, metrics, status)."""
