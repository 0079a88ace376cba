from pitlane_notification.adapters.tables import metadata
from pitlane_platform.migrations import run_env

run_env(metadata)
