"""The web portal (门户): the platform's face for legal persons, government staff and banks.

A backend-for-frontend: server-rendered pages that reach the platform only through the
gateway's public API, exactly as a third-party portal would.
"""
