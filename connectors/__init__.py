"""Connector services that feed agency and port systems into the bus.

`connectors.sdk` is the small base every connector shares (configuration,
logs, metrics, health, retries, shutdown); each sub-package is one connector.
"""
