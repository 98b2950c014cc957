"""The Apache Spark engine: session, dialect, executor-side scoring and lint."""
