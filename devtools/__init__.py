"""Development-only code: demo data and simulators that production code never imports."""
