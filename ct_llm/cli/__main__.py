"""`python -m ct_llm.cli`: the same as the `ct-llm` command."""

from ct_llm.cli import main

main()
