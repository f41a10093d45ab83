"""Serving: the vLLM server lifecycle and client, adapter checks, canary deploy, promote, rollback.

vLLM runs in its own virtual environment and is reached only over HTTP, so nothing here imports
vllm or torch.
"""
