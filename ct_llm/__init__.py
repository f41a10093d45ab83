"""ct-llm: continuous fine-tuning for LLM chatbots.

Importing the package is cheap on purpose: no torch, no transformers. Heavy modules are imported
inside the functions that need them (train/, model import), so the CLI and the API start fast.
"""

__version__ = "0.1.0"
