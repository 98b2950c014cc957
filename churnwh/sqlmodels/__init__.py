"""The SQL model project: parsing, the runner (fingerprints, checks, audits) and column lineage."""
