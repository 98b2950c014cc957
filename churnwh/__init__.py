"""churnwh: a privacy-aware churn-scoring job for a DuckDB warehouse."""

__version__ = "0.1.0"
