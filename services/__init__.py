"""Long-running jobs and servers: the campaign, the test helper, monitoring."""
