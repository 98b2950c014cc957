"""Keys and pseudonyms, classification, lineage proofs, publishing, erasure, the audit log, access, key rotation."""
