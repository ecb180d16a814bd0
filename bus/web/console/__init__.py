"""The liaison officer's web console: one member's feed, verified, searchable, live.

`create_app` builds the FastAPI application over a feed index and its indexer;
`bus console` (bus/cli/console.py) composes them with Kafka and runs it.
"""

from bus.web.console.app import ConsoleConfig, create_app

__all__ = ["ConsoleConfig", "create_app"]
