"""The demo's heterogeneous campaign effect: who can be saved, who responds strongly, who is annoyed by contact,
and the true uplift per member that targeting rules are scored against (kept outside the warehouse)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from churnwh.sources.demo import advance, expected_saved, read_uplift_truth, simulate
from churnwh.sources.demo.simulation import SUBSCRIBED

START, END = dt.date(2024, 1, 1), dt.date(2025, 12, 31)


def _play(effect: float, model: str = "heterogeneous", *, campaign: bool = True, days: int = 60):
    """400 demo customers; every subscriber at the end of the history is a member, half of them treated."""
    cont = simulate(400, 7, START, END).continuation
    members = np.flatnonzero(cont.state.status == 1) + 1
    treated = np.random.default_rng(0).random(members.size) < 0.5
    if campaign:
        advance.register_campaign(cont, "c1", members, treated, effect, dt.date(2026, 1, 1),
                                  dt.date(2026, 1, 1) + dt.timedelta(days=days), model)
    release = advance.advance(cont, days)
    return cont, release, advance.uplift_truth(cont)


@pytest.fixture(scope="module")
def played():
    """A one-month window (January 2026): every member's kind of response holds for the whole window."""
    return _play(0.3, days=31)


def test_the_effect_differs_between_customers(played):
    cont, _, truth = played
    uplift = truth["uplift"].to_numpy()
    risk = truth["churn_if_not_contacted"].to_numpy()
    response = np.asarray(truth["response"].to_pylist())
    # unsaveable customers are among the riskiest and a contact changes nothing for them
    riskiest = risk >= np.quantile(risk, 0.9)
    assert np.any(riskiest & (uplift == 0.0) & (response == "unsaveable"))
    assert risk[response == "unsaveable"].mean() > 2 * risk.mean()
    assert np.all(uplift[response == "unsaveable"] == 0.0)
    # strong responders, below the riskiest, gain more than anyone else per unit of risk
    strong = response == "strong"
    assert strong.any() and uplift[strong].mean() > 2 * uplift.mean()
    assert np.median(uplift[strong] / risk[strong]) > 1.5 * np.median(
        (uplift / np.maximum(risk, 1e-12))[response == "baseline"])
    # a few are driven away by the contact
    annoyed = uplift < 0
    assert 0 < annoyed.sum() <= 0.1 * uplift.size and set(response[annoyed]) == {"annoyed"}
    # risk is a poor guide: the riskiest tenth is worth less per contact than the strong responders
    assert uplift[riskiest].mean() < uplift[strong].mean()
    # both potential outcomes are probabilities; the planted effect is the members' mean uplift
    assert np.all((truth["churn_if_contacted"].to_numpy() >= 0) & (truth["churn_if_contacted"].to_numpy() <= 1))
    assert advance.planted_effect(advance.campaign_of(cont, "c1")) == pytest.approx(uplift.mean(), abs=1e-15)


def test_uniform_model_and_no_effect(played):
    _, _, uniform = _play(0.3, "uniform")
    # the uniform effect: the same relative cut of every monthly hazard, so the uplift is 30% of the churn if
    # not contacted for a low risk, less for a high one (the window's two months compound)
    risk, uplift = uniform["churn_if_not_contacted"].to_numpy(), uniform["uplift"].to_numpy()
    assert np.all(uplift[risk > 0] > 0) and set(uniform["response"].to_pylist()) <= {"baseline", "not_at_risk"}
    assert np.all(uplift <= 0.3 * risk + 1e-15)
    low = risk < 0.05
    assert low.sum() > 100 and uplift[low] == pytest.approx(0.3 * risk[low], rel=0.05)
    # --effect 0: no uplift for anyone and the very same business as without the campaign
    _, zero, truth = _play(0.0)
    _, none, _ = _play(0.0, campaign=False)
    assert np.all(truth["uplift"].to_numpy() == 0.0)
    assert zero.truth.equals(none.truth)
    assert all(zero.appends[name].equals(none.appends[name]) for name in none.appends)


def test_same_seed_same_campaign_same_truth(played, tmp_path):
    _, release, truth = played
    again_cont, again, again_truth = _play(0.3, days=31)
    assert again_truth.equals(truth) and again.truth.equals(release.truth)
    # the state keeps what the truth needs: saved and loaded, it gives the same truth
    advance.save(again_cont, tmp_path / "demo_state")
    assert advance.uplift_truth(advance.load(tmp_path / "demo_state")).equals(truth)
    # a state saved before the per-customer effect existed cannot say it: refused, with the way out
    arrays_path = tmp_path / "demo_state" / "arrays.npz"
    with np.load(arrays_path) as saved:
        older = {name: saved[name] for name in saved.files if not name.endswith(".no_cancel_contacted")}
    np.savez(arrays_path, **older)
    with pytest.raises(advance.AdvanceError, match="older churnwh .* run `churnwh demo --force`"):
        advance.load(tmp_path / "demo_state")


def test_expected_saved_scores_a_targeting_rule(played, tmp_path):
    _, _, truth = played
    path = tmp_path / "uplift_truth.parquet"
    pq.write_table(truth, path)
    one = read_uplift_truth(path, "c1")
    ids = np.asarray(one["customer_id"].to_pylist())
    uplift = one["uplift"].to_numpy()
    risk = one["churn_if_not_contacted"].to_numpy()
    k = ids.size // 5
    by_risk = ids[np.argsort(-risk, kind="stable")[:k]]
    by_uplift = ids[np.argsort(-uplift, kind="stable")[:k]]
    assert expected_saved(one, by_uplift) == pytest.approx(np.sort(uplift)[::-1][:k].sum())
    assert expected_saved(one, by_uplift) > expected_saved(one, by_risk)
    assert expected_saved(one, []) == 0.0
    with pytest.raises(ValueError, match="not members of the campaign"):
        expected_saved(one, ["C99999999"])
    with pytest.raises(ValueError, match="no members of campaign nope"):
        read_uplift_truth(path, "nope")


def test_realized_churn_follows_the_truth():
    """The truth is what the simulated business does: on 20,000 customers (about 10,800 members) the realized
    churn of each group and the gap between them are the truth's means up to sampling noise."""
    cont = simulate(20000, 1, START, END).continuation
    members = np.flatnonzero(cont.state.status == SUBSCRIBED)
    treated = np.random.default_rng(1).random(members.size) < 0.5
    advance.register_campaign(cont, "c1", members + 1, treated, 0.6, dt.date(2026, 1, 1), dt.date(2026, 2, 1))
    advance.advance(cont, 31)
    truth = advance.uplift_truth(cont)
    # churn as the pilot report counts it on 2026-02-01: the active period ended in January (no re-signup by then)
    churned = cont.state.status[members] != SUBSCRIBED
    not_contacted, contacted = truth["churn_if_not_contacted"].to_numpy(), truth["churn_if_contacted"].to_numpy()
    control_rate, treated_rate = churned[~treated].mean(), churned[treated].mean()
    se_control = np.sqrt(control_rate * (1 - control_rate) / (~treated).sum())
    se_treated = np.sqrt(treated_rate * (1 - treated_rate) / treated.sum())
    assert abs(control_rate - not_contacted[~treated].mean()) <= 3 * se_control
    assert abs(treated_rate - contacted[treated].mean()) <= 3 * se_treated
    planted = (not_contacted - contacted).mean()
    assert abs((control_rate - treated_rate) - planted) <= 3 * np.hypot(se_control, se_treated)
    # the annoyed churn more if contacted (about 470 of them: too few to see the realized gap of about half a
    # point reliably; the overall gap above includes their added cancellations)
    annoyed = np.asarray(truth["response"].to_pylist()) == "annoyed"
    assert annoyed.sum() > 300 and np.all(contacted[annoyed] > not_contacted[annoyed])


def test_a_shadow_follows_everyone_and_changes_nothing(tmp_path):
    """`demo-campaign --truth-for-everyone`: every customer's two potential outcomes over the campaign's window,
    the members' equal to the campaign's own, and the very same business as without it."""
    cont, release, truth = _play(0.3, days=31)
    shadowed = simulate(400, 7, START, END).continuation
    members = np.flatnonzero(shadowed.state.status == 1) + 1
    treated = np.random.default_rng(0).random(members.size) < 0.5
    advance.register_campaign(shadowed, "c1", members, treated, 0.3, dt.date(2026, 1, 1), dt.date(2026, 2, 1))
    assert advance.register_shadow(shadowed, "c1") == "c1" + advance.SHADOW_SUFFIX
    again = advance.advance(shadowed, 31)
    assert again.truth.equals(release.truth)
    assert all(again.appends[name].equals(release.appends[name]) for name in release.appends)
    both = advance.uplift_truth(shadowed)
    assert both.filter(pc.equal(both["campaign_id"], "c1")).equals(truth)
    everyone = both.filter(pc.equal(both["campaign_id"], "c1" + advance.SHADOW_SUFFIX))
    assert everyone.num_rows == cont.state.status.size - (release.appends["customers"].num_rows or 0)
    assert not any(everyone["treated"].to_pylist())
    shadow_uplift = dict(zip(everyone["customer_id"].to_pylist(), everyone["uplift"].to_pylist()))
    assert [shadow_uplift[c] for c in truth["customer_id"].to_pylist()] == truth["uplift"].to_pylist()
    # the shadow is saved with the state, and its truth with it
    advance.save(shadowed, tmp_path / "demo_state")
    assert advance.uplift_truth(advance.load(tmp_path / "demo_state")).equals(both)
