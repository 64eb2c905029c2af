"""Development-only tools: never imported by production code."""
