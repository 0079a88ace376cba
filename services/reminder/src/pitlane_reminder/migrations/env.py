from pitlane_platform.migrations import run_env
from pitlane_reminder.adapters.tables import metadata

run_env(metadata)
