"""Development-only tools (demo data, simulators of the outside world): never imported by production code."""
