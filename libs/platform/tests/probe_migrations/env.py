from pitlane_platform.migrations import run_env
from pitlane_platform.schema import service_metadata

run_env(service_metadata())
