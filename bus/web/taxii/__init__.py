"""TAXII 2.1 over a member's feed index: `create_taxii_app`, mounted by the console at `/taxii2/`.

Read-only, authenticated like the console (`TaxiiAuth`), answering in
`application/taxii+json;version=2.1` only. The pages come from `bus.services.taxii`.
"""

from bus.web.taxii.app import TaxiiConfig, api_root_name, create_taxii_app
from bus.web.taxii.auth import TaxiiAuth

__all__ = ["TaxiiAuth", "TaxiiConfig", "api_root_name", "create_taxii_app"]
