"""The built-in demo: a shop support bot learns a changed return policy from agent edits."""
