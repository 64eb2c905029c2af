"""Routing public requests to the services."""
