"""Where the warehouse lives: DuckDB connections, the build lock, crash (fault) points, exports."""
