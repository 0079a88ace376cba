import pitlane_customer_profile.adapters.tables  # noqa: F401  (defines our tables on the MetaData)
from pitlane_platform.migrations import run_env
from pitlane_platform.schema import service_metadata

run_env(service_metadata())
