"""The member's feed as TAXII 2.1 collections: cursors built from Kafka offsets, pages of STIX objects.

`cursor`: the `next` cursor (pure); `feed`: the collections and their pages over the feed index.
The HTTP side is `bus.web.taxii`.
"""
