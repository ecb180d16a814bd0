"""edifact: container messages from port community systems raise suspicious-container alerts."""
