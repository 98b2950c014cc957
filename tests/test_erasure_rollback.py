"""Issue 14, finding 4: an erasure (or an objection) cannot be undone by rolling back the model.

After `forget` and the forced retrain, `churnwh rollback v0001` (the model trained on the erased
customer's rows) was accepted, the next build republished its scores and `doctor` said OK.
"""

from __future__ import annotations

import datetime as dt
import shutil

import duckdb

from tests.helpers import churnwh, private


def copy_of(built_project, tmp_path):
    source, _ = built_project
    project = tmp_path / "p"
    shutil.copytree(source, project)
    return project


def trained_customer(project) -> str:
    """The id of a customer with rows in the training set (so v0001 learned from them)."""
    with private(project) as con:
        return con.execute(
            "SELECT min(customer_id) FROM raw.customer_keys WHERE customer_pseudonym IN "
            "(SELECT customer_pseudonym FROM marts.training_set) AND customer_pseudonym NOT IN "
            "(SELECT customer_pseudonym FROM staging.consent_state WHERE purpose = 'profiling' AND state = 'withdrawn')"
        ).fetchone()[0]


def runs(project) -> dict[str, str]:
    with private(project) as con:
        return dict(con.execute("SELECT version, status FROM ml.model_runs").fetchall())


def published_versions(project) -> set[str]:
    with duckdb.connect(str(project / "warehouse" / "churn.duckdb"), read_only=True) as con:
        return {row[0] for row in con.execute("SELECT DISTINCT model_version FROM churn_scores").fetchall()}


def test_a_model_trained_on_an_erased_customer_cannot_come_back(built_project, tmp_path):
    project = copy_of(built_project, tmp_path)
    models = project / "warehouse" / "models"
    assert runs(project) == {"v0001": "current"} and (models / "v0001").is_dir()
    forgotten = churnwh(project, "forget", trained_customer(project))
    assert forgotten.returncode == 0, forgotten.stderr
    assert runs(project) == {"v0001": "withdrawn"}
    assert not (models / "v0001").exists()  # the artifact that memorised the customer is deleted
    doctor = churnwh(project, "doctor")
    assert doctor.returncode != 0 and "v0001 was withdrawn" in doctor.stdout + doctor.stderr

    rebuilt = churnwh(project, "build")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert runs(project) == {"v0001": "withdrawn", "v0002": "current"}
    refused = churnwh(project, "rollback", "v0001")
    assert refused.returncode != 0
    message = refused.stderr.strip()
    assert "v0001 cannot be restored" in message and "erased" in message and len(message.splitlines()) == 1
    again = churnwh(project, "build")
    assert again.returncode == 0, again.stderr
    assert published_versions(project) == {"v0002"}
    doctor = churnwh(project, "doctor")
    assert "withdrawn model version(s), none restorable" in doctor.stdout + doctor.stderr


def test_a_new_objection_withdraws_the_models_trained_on_the_objector(built_project, tmp_path):
    project = copy_of(built_project, tmp_path)
    objector = trained_customer(project)
    with duckdb.connect(str(project / "warehouse" / "private.duckdb")) as con:  # the source system records it
        con.execute("INSERT INTO raw.consent_events VALUES ('CE_NEW_1', ?, 'profiling', 'withdraw', ?, 'web', 'GDPR')",
                    [objector, dt.datetime(2025, 12, 30, 12, 0)])
    rebuilt = churnwh(project, "build")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert runs(project) == {"v0001": "withdrawn", "v0002": "current"}
    assert published_versions(project) == {"v0002"}
    with private(project) as con:
        decision = con.execute("SELECT decision FROM ml.model_runs WHERE version = 'v0001'").fetchone()[0]
        pseudonym = con.execute("SELECT customer_pseudonym FROM raw.customer_keys WHERE customer_id = ?",
                                [objector]).fetchone()[0]
        in_v0002 = con.execute("SELECT count(*) FROM ml.model_training_subjects WHERE version = 'v0002' "
                               "AND customer_pseudonym = ?", [pseudonym]).fetchone()[0]
    assert "objected to profiling" in decision
    assert in_v0002 == 0
    refused = churnwh(project, "rollback", "v0001")
    assert refused.returncode != 0 and "objected" in refused.stderr


def test_objection_retrain_days_keeps_the_model_a_while_but_never_the_objector(built_project, tmp_path):
    """[training] objection_retrain_days: the objector leaves the scores at once; the model trained on
    them is withdrawn only at the first build that many days after the objection."""
    from churnwh.privacy import withdrawal

    project = copy_of(built_project, tmp_path)
    config = project / "churnwh.toml"
    config.write_text(config.read_text().replace("[training]\n", "[training]\nobjection_retrain_days = 30\n", 1))
    objector = trained_customer(project)
    objected = dt.datetime(2025, 12, 30, 12, 0)
    with duckdb.connect(str(project / "warehouse" / "private.duckdb")) as con:
        con.execute("INSERT INTO raw.consent_events VALUES ('CE_GRACE', ?, 'profiling', 'withdraw', ?, 'web', 'GDPR')",
                    [objector, objected])
    rebuilt = churnwh(project, "build")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert runs(project) == {"v0001": "current"}  # the model stays (retrain_after_days reuses it)
    with private(project) as con:
        pseudonym = con.execute("SELECT customer_pseudonym FROM raw.customer_keys WHERE customer_id = ?",
                                [objector]).fetchone()[0]
        assert con.execute("SELECT count(*) FROM ml.churn_scores WHERE customer_pseudonym = ?", [pseudonym]).fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM features.customer_features WHERE customer_pseudonym = ?",
                           [pseudonym]).fetchone()[0] == 0
    with duckdb.connect(str(project / "warehouse" / "private.duckdb")) as con:
        day = objected.date()
        assert withdrawal.withdraw_for_objections(con, day + dt.timedelta(days=29), 30) == []
        assert withdrawal.withdraw_for_objections(con, day + dt.timedelta(days=30), 30) == ["v0001"]


def test_an_erasure_withdraws_versions_whose_subjects_were_never_recorded(built_project, tmp_path):
    """Versions trained before subjects were recorded: nobody can tell whether the customer was in them."""
    project = copy_of(built_project, tmp_path)
    with duckdb.connect(str(project / "warehouse" / "private.duckdb")) as con:
        con.execute("DELETE FROM ml.model_training_subjects")
        someone = con.execute("SELECT max(customer_id) FROM raw.customer_keys").fetchone()[0]
    forgotten = churnwh(project, "forget", someone)
    assert forgotten.returncode == 0, forgotten.stderr
    assert runs(project) == {"v0001": "withdrawn"}
