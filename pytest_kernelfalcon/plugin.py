"""pytest hooks for --falcon (being written)."""
