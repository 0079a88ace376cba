"""The analytics domain: periods in the chain's time zone and the KPI formulas of ../shared/KPI.md over
figures the read models give. Pure: no I/O, no clock reads."""
