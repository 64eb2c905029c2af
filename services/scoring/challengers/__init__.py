"""Challenger models (挑战者模型): a new model version in shadow against the champion."""
