"""The gateway: the OpenAI-compatible chat proxy and the feedback API in one FastAPI app."""
