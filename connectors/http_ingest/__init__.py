"""http-ingest: agency systems POST alerts as JSON; 202 only after Kafka acknowledged them."""
