"""Loan outcomes (贷后表现): banks report how each disbursed loan performs (issue 13)."""
