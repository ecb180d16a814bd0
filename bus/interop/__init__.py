"""Alerts in the threat-intelligence world's formats (STIX 2.1, MISP).

Pure mappings: an alert in, library objects out. Files, Kafka and HTTP stay in
`bus.adapters` and the CLI, so the TAXII server can call the same functions per
alert that `bus stix export` and `bus misp export` call per file or feed range.
"""
