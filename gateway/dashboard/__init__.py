"""The caller's own view: who am I, and the mini-app dashboard."""
