"""Used by several components: tagging, TLS parameters with the shipped RDS CA bundles (rds_ca/), and
SCRAM-SHA-256 verifiers."""
