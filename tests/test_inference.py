"""Inference attacks on the published file: what an analyst can work out that was withheld.

Each test plays the attacker on a real build: it reads only the published file, then checks its
guesses against the truth in the private file.
"""

from __future__ import annotations

import shutil

import duckdb
import numpy as np
import polars as pl

from tests.helpers import churnwh, private

WITHHELD = ("age_band", "gender", "region")
MARGIN = 0.2
"""How far above the majority-class rate a guess may land before it counts as disclosure."""


def published(project, sql: str) -> pl.DataFrame:
    with duckdb.connect(str(project / "warehouse" / "churn.duckdb"), read_only=True) as con:
        return pl.from_arrow(con.sql(sql).to_arrow_table())


def leave_one_out_knn(x: np.ndarray, y: np.ndarray, k: int = 5) -> float:
    """Accuracy of guessing each customer's category from the k customers with the closest value."""
    distance = np.abs(x[:, None] - x[None, :])
    np.fill_diagonal(distance, np.inf)
    nearest = np.argsort(distance, axis=1, kind="stable")[:, :k]
    guesses = [max(sorted(set(y[row])), key=list(y[row]).count) for row in nearest]
    return float(np.mean(np.asarray(guesses) == y))


def test_withheld_attributes_cannot_be_read_from_published_drivers(built_project):
    """Finding 2 of issue 14: region, gender and age band were 'withheld' in value_bucket, but each
    category's contributions fell in its own narrow range (and a feature listed only for one
    category gave it away by being listed). For every published driver feature, guess each withheld
    attribute from the contribution, for the customers it is listed for."""
    project, _ = built_project
    drivers = published(project, "SELECT customer_pseudonym, feature, contribution FROM churn_drivers")
    with private(project) as con:
        truth = pl.from_arrow(con.sql(
            f"SELECT customer_pseudonym, {', '.join(WITHHELD)} FROM marts.scoring_set").to_arrow_table())
    assert drivers.height > 0 and truth.height > 0
    disclosed = []
    for attribute in WITHHELD:
        majority = truth[attribute].value_counts()["count"].max() / truth.height
        for (feature,), rows in drivers.join(truth, on="customer_pseudonym").group_by("feature"):
            if rows.height < 30:
                continue
            accuracy = leave_one_out_knn(rows["contribution"].to_numpy(), rows[attribute].to_numpy())
            if accuracy > majority + MARGIN:
                disclosed.append(f"{attribute} from {feature}: {accuracy:.2f} vs {majority:.2f}")
    assert not disclosed, disclosed
    assert not set(drivers["feature"]) & set(WITHHELD)


def residual_attack(project) -> dict[str, tuple[float, float]]:
    """Guess each withheld attribute from what the listed drivers leave unexplained of the published
    score: logit(churn_probability) minus the listed contributions (attributions add up to the logit
    difference, so this is the unlisted features' share, withheld ones included).
    Returns attribute -> (accuracy, majority-class rate)."""
    drivers = published(project, "SELECT customer_pseudonym, sum(contribution) AS listed FROM churn_drivers GROUP BY ALL")
    scores = published(project, "SELECT customer_pseudonym, churn_probability FROM churn_scores")
    with private(project) as con:
        truth = pl.from_arrow(con.sql(
            f"SELECT customer_pseudonym, {', '.join(WITHHELD)} FROM marts.scoring_set").to_arrow_table())
    rows = scores.join(drivers, on="customer_pseudonym", how="left").join(truth, on="customer_pseudonym")
    p = rows["churn_probability"].to_numpy()
    residual = np.log(p / (1 - p)) - rows["listed"].fill_null(0.0).to_numpy()
    return {attribute: (leave_one_out_knn(residual, rows[attribute].to_numpy()),
                        rows[attribute].value_counts()["count"].max() / rows.height) for attribute in WITHHELD}


def summary_attack(project) -> dict[str, float]:
    """Guess each withheld attribute from the published other_contribution (issue 16 item 9: the features
    neither listed nor in the customer profile, summed: actionable ones beyond the top ranks and the
    withheld ones). Returns attribute -> accuracy."""
    other = published(project, "SELECT DISTINCT customer_pseudonym, other_contribution FROM churn_drivers")
    with private(project) as con:
        truth = pl.from_arrow(con.sql(
            f"SELECT customer_pseudonym, {', '.join(WITHHELD)} FROM marts.scoring_set").to_arrow_table())
    rows = other.join(truth, on="customer_pseudonym")
    assert rows.height == other.height == truth.height
    return {attribute: leave_one_out_knn(rows["other_contribution"].to_numpy(), rows[attribute].to_numpy())
            for attribute in WITHHELD}


def test_the_published_summaries_disclose_little_more_than_the_score(built_project):
    """other_contribution holds the withheld attributes' share without the calibration's and the profile's
    noise, so it hints at them a little more than the score does (measured on the 400-customer demo: gender
    0.81 against 0.75 from the score, majority rate 0.54); the bound keeps that from growing unnoticed."""
    project, _ = built_project
    from_score = residual_attack(project)
    for attribute, accuracy in summary_attack(project).items():
        assert accuracy <= max(from_score[attribute][0], from_score[attribute][1]) + MARGIN / 2, (
            attribute, accuracy, from_score[attribute])


def test_a_model_without_quasi_identifier_inputs_scores_reveal_none(built_project, tmp_path):
    """The limit that remains with the defaults: the score depends on the withheld attributes as much
    as the model uses them, so the score minus the listed drivers still hints at them (measured on the
    400-customer demo: gender 0.78 against a 0.54 majority rate). With
    training.withhold_quasi_identifiers the model never sees them and the same attack is at chance."""
    source, _ = built_project
    project = tmp_path / "p"
    shutil.copytree(source, project)
    config = project / "churnwh.toml"
    config.write_text(config.read_text().replace("[training]\n", "[training]\nwithhold_quasi_identifiers = true\n"))
    result = churnwh(project, "build")
    assert result.returncode == 0, result.stderr
    assert "v0002" in result.stdout  # the setting changed what the model depends on: it was retrained
    for attribute, (accuracy, majority) in residual_attack(project).items():
        assert accuracy <= majority + MARGIN / 2, (attribute, accuracy, majority)
    summaries = summary_attack(project)
    for attribute, (_, majority) in residual_attack(project).items():
        assert summaries[attribute] <= majority + MARGIN / 2, (attribute, summaries[attribute], majority)
    importance = published(project, "SELECT feature FROM feature_importance")["feature"].to_list()
    assert not set(importance) & set(WITHHELD)


def test_value_at_risk_does_not_disclose_an_exact_monthly_value(built_project, tmp_path):
    """Finding 2 (second part): value_at_risk / churn_probability / horizon gave back each customer's
    exact monthly value. With a per-customer value (the last 90 days' spend) most values were unique;
    what can be divided out now is shared by at least k scored customers."""
    source, _ = built_project
    project = tmp_path / "p"
    shutil.copytree(source, project)
    config = project / "churnwh.toml"
    config.write_text(config.read_text().replace("[scoring]\n", '[scoring]\nvalue_column = "spend_90d"\n', 1))
    result = churnwh(project, "build")
    assert result.returncode == 0, result.stderr
    scores = published(project, "SELECT churn_probability, value_at_risk FROM churn_scores "
                                "WHERE churn_probability > 0.01")
    assert scores.height > 50
    recovered = (scores["value_at_risk"] / scores["churn_probability"] / 12).to_numpy()
    # the attacker's tolerance: the published value at risk is to the cent, so values within 1% are one value
    close = np.abs(recovered[:, None] - recovered[None, :]) <= 0.01 * np.maximum(np.abs(recovered[:, None]), 1.0)
    sharing = close.sum(axis=1)
    assert (sharing >= 5).all(), f"{int((sharing < 5).sum())} customers have a recoverable value shared by fewer than 5"
    with private(project) as con:
        exact = con.execute("SELECT count(DISTINCT spend_90d) FROM marts.scoring_set").fetchone()[0]
    assert exact > 50  # the attack had something to find: the private values are mostly distinct
