"""Pitlane workorder service."""
