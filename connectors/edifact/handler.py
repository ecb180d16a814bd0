"""One EDIFACT interchange -> alerts, with container state committed only once published."""

from __future__ import annotations

from bus.adapters.schema_files import default_empact_codes
from bus.core.codelists import EmpactCodeList
from bus.core.models import parse_alert
from bus.errors import AlertValidationError, FileRejected
from connectors.edifact.alerts import alert_data
from connectors.edifact.config import EdifactInbox
from connectors.edifact.parse import parse_interchange
from connectors.edifact.rules import apply
from connectors.edifact.state import Containers, StateStore
from connectors.sdk.inbox import FileInfo, Row


class EdifactHandler:
    def __init__(self, settings: EdifactInbox, member: str, store: StateStore, *,
                 empact_codes: EmpactCodeList | None = None) -> None:
        self.settings = settings
        self.member = member
        self.store = store
        self.empact_codes = empact_codes or default_empact_codes()
        self.suffixes = tuple(s.lower() for s in settings.suffixes)
        self._pending: dict[str, Containers] = {}
        self._containers_read: dict[str, int] = {}

    def read(self, info: FileInfo) -> list[Row]:
        try:
            text = info.path.read_bytes().decode(self.settings.encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            raise FileRejected([f"not {self.settings.encoding} text: {exc}"]) from None
        events = parse_interchange(text, self.settings.event_codes)
        containers = self.store.snapshot()
        rows = []
        for event in events:
            findings, containers[event.container] = apply(event, containers.get(event.container),
                                                          self.settings.rules)
            if not findings:
                continue
            data = alert_data(event, findings, info, self.settings.alert_header,
                              self.settings.expires_after_days)
            try:
                rows.append(Row(event.where, parse_alert(data, empact_codes=self.empact_codes, producer=self.member)))
            except AlertValidationError as exc:
                rows.append(Row(event.where, problems=[f"{loc}: {msg}" for loc, msg in exc.errors]))
        self._pending[info.sha256] = containers
        self._containers_read[info.sha256] = len(events)
        return rows

    def already_applied(self, info: FileInfo) -> bool:
        return self.store.is_applied(info.sha256)

    def completed(self, info: FileInfo) -> None:
        self.store.commit(self._pending.pop(info.sha256), info.sha256)

    def describe(self, info: FileInfo, rows: list[Row]) -> str:
        """Only containers with findings become rows: say how many containers there were."""
        read = self._containers_read.pop(info.sha256, len(rows))
        return f"{read} container{'s' if read != 1 else ''} read, {len(rows)} with findings"
