"""The policy router: `alerts.*` and `acks` in; feeds, receipts, audit, dead letters out.

    router = Router(engine, sources.load, RouterIdentity("EPA-ROUTER-1", signer), RouterOptions(...))
    router.run()

See `service.py` for the loop, `batch.py` for what one transaction writes, `state.py`
for the per-task state and its restore, docs/architecture.md for the design.
"""

from bus.services.router.options import MAX_RECORD_BYTES, RouterIdentity, RouterOptions
from bus.services.router.service import Loader, Router, RouterStats
from bus.services.router.sources import FileSources

__all__ = ["MAX_RECORD_BYTES", "FileSources", "Loader", "Router", "RouterIdentity", "RouterOptions", "RouterStats"]
