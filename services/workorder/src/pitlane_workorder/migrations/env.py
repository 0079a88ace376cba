from pitlane_platform.migrations import run_env
from pitlane_workorder.adapters.tables import metadata

run_env(metadata)
