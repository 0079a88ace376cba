"""Pitlane customer-profile service."""
