"""Same data, config and seed give the same features, scores and explanations, whatever the
pseudonymization key and however many threads DuckDB uses."""

from __future__ import annotations

import hashlib

import polars as pl
from polars.testing import assert_frame_equal

from churnwh.privacy.keys import pseudonymize
from tests.helpers import churnwh, make_project, private

KEYS = tuple(hashlib.sha256(seed).hexdigest() for seed in (b"first key", b"second key"))
"""Two fixed keys that look like real ones (a key of one repeated digit matches numbers such as
0.1111111111111111 in the publish check's key canary scan)."""


def build(root, key: str, threads: int):
    project = make_project(root, extra="")
    config = (project / "churnwh.toml").read_text().replace("# threads = 2 ", f"threads = {threads}  ")
    assert f"threads = {threads}" in config
    (project / "churnwh.toml").write_text(config)
    result = churnwh(project, "build", env={"CHURNWH_KEY": key})
    assert result.returncode == 0, result.stderr
    return project


def by_customer(project, key: str, query: str) -> pl.DataFrame:
    """``query``'s rows with the keyed pseudonym replaced by the raw customer id (keys differ per build)."""
    with private(project) as con:
        ids = [row[0] for row in con.execute("SELECT DISTINCT customer_id FROM raw.customers").fetchall()]
        frame = pl.from_arrow(con.sql(query).to_arrow_table())
    to_id = dict(zip(pseudonymize(ids, bytes.fromhex(key)), ids, strict=True))
    frame = frame.with_columns(pl.col("customer_pseudonym").replace_strict(to_id)).rename(
        {"customer_pseudonym": "customer_id"})
    return frame.sort(["customer_id", *[name for name in frame.columns if name == "observation_date"]])


def test_key_and_thread_count_do_not_change_features_scores_or_importance(tmp_path):
    first = build(tmp_path / "a", KEYS[0], threads=1)
    second = build(tmp_path / "b", KEYS[1], threads=2)
    for query in ("SELECT * FROM features.customer_features",
                  "SELECT customer_pseudonym, churn_probability, risk_tier, value_at_risk FROM ml.churn_scores"):
        assert_frame_equal(by_customer(first, KEYS[0], query), by_customer(second, KEYS[1], query),
                           check_exact=True)
    importance = "SELECT * EXCLUDE (model_version) FROM ml.feature_importance ORDER BY rank"
    with private(first) as con_a, private(second) as con_b:
        assert_frame_equal(pl.from_arrow(con_a.sql(importance).to_arrow_table()),
                           pl.from_arrow(con_b.sql(importance).to_arrow_table()), check_exact=True)
