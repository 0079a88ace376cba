from pitlane_analytics.adapters.tables import metadata
from pitlane_platform.migrations import run_env

run_env(metadata)
