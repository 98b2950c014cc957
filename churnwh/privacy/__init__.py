"""Keys, classification, lineage proofs, publishing, erasure, the audit log, access and key rotation."""
