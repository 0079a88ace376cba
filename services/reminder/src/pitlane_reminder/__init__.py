"""Pitlane reminder service."""
