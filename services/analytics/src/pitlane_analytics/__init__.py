"""Pitlane analytics service."""
