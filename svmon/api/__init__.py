"""The ingestion API: suppliers report evidence, contract managers review it."""
