"""A folder of files turned into published alerts, with no loss and no duplicates.

Shared by the directory-drop and EDIFACT connectors: they only say how a file
becomes alerts (`FileHandler`); this package watches the folder, publishes in
batches, checkpoints what Kafka acknowledged, resumes after a crash without
re-publishing, and moves each file to done/ or failed/ with an error report.
"""

from bus.errors import FileRejected  # re-exported: connector authors raise it from their FileHandler
from connectors.sdk.inbox.connector import InboxConnector
from connectors.sdk.inbox.handler import FileHandler, FileInfo, Row
from connectors.sdk.inbox.pipeline import InboxPipeline, Outcome, Result
from connectors.sdk.inbox.settings import InboxSettings

__all__ = [
    "FileHandler",
    "FileInfo",
    "FileRejected",
    "InboxConnector",
    "InboxPipeline",
    "InboxSettings",
    "Outcome",
    "Result",
    "Row",
]
