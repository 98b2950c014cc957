"""What the retention team acts on: plans, campaigns, pilots, actions and the report."""
