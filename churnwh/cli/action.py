"""From scores to action: plan, pilot-report, demo-campaign, demo-advance, backtest, report (churnwh.action.actions)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from churnwh.cli.common import answer, command, out, project_config, say
from churnwh.errors import ChurnwhError

PANEL = "From scores to action"


@command(panel=PANEL)
def plan(
    campaign: str = typer.Option(..., "--campaign", metavar="ID", help="A new campaign id (letters, digits, - and _)."),
    budget: Optional[float] = typer.Option(None, "--budget", metavar="AMOUNT",
                                           help="Total budget (default retention.budget)."),
    cost: Optional[list[str]] = typer.Option(None, "--cost", metavar="TIER=AMOUNT",
                                             help="Cost per action in a tier (repeatable)."),
    success_rate: Optional[list[str]] = typer.Option(
        None, "--success-rate", metavar="TIER=SHARE", help="Assumed success rate in a tier (repeatable)."),
    control_fraction: Optional[float] = typer.Option(
        None, "--control-fraction", metavar="SHARE", help="Share held out as control (default retention.control_fraction)."),
    by: str = typer.Option("risk", "--by", metavar="RULE",
                           help="risk: value at risk x the tier's success rate; uplift: the uplift model's expected "
                                "saved value net of the cost (needs a model fitted from finished pilots)."),
    compare: Optional[str] = typer.Option(
        None, "--compare", metavar="RULE",
        help="Also test this other rule in the same campaign: the customers are split at random into two halves, "
             "each with half the budget, its own rule and its own control group; pilot-report compares them."),
) -> None:
    """Select customers to contact within a budget (maximum expected saved value), with a control group.

    Example: churnwh plan --campaign spring-2026 --budget 5000 --cost high=40 --cost medium=8

    Example: churnwh plan --campaign autumn-2026 --budget 5000 --by uplift --compare risk
    """
    from churnwh.action import actions

    result = actions.plan(project_config(), campaign, budget, cost, success_rate, control_fraction, by, compare)
    arms = "".join(f"; {name} arm: {arm['selected']} selected ({arm['treated']} to contact, {arm['control']} control), "
                   f"cost {arm['treated_cost']:,.2f}" for name, arm in result["arms"].items())
    say(
        f"campaign {result['campaign_id']} (targeting {result['targeting']}): {result['selected']} customers selected "
        f"({result['treated']} to contact, {result['control']} control), cost {result['treated_cost']:,.2f} of "
        f"{result['budget']:,.2f}, expected saved value {result['expected_saved_value']:,.2f}{arms}; see "
        "ml.retention_plan (ml.churn_scores.campaign_group is updated; the published file shows it after the next "
        "`churnwh score` or `churnwh build`)"
    )


@command("pilot-report", panel=PANEL)
def pilot_report(campaign: str = typer.Argument(..., metavar="CAMPAIGN", help="The campaign id given to `churnwh plan`.")) -> None:
    """Compare realized churn of treated and control customers of a campaign since it started.

    Example: churnwh pilot-report spring-2026
    """
    from churnwh.action import actions

    r = actions.pilot_report(project_config(), campaign)
    per_cost = r["retained_per_1000_cost"]
    answer(
        f"campaign {campaign} ({r['campaign_as_of']} to {r['outcome_through']}): churn {r['treated_churn_rate']:.1%} "
        f"treated (n={r['treated']}) vs {r['control_churn_rate']:.1%} control (n={r['control']}); effect "
        f"{r['effect']:+.1%} (95% CI {r['ci_low']:+.1%} to {r['ci_high']:+.1%}); "
        f"{r['retained_customers']:.1f} customers retained"
        + (f", {per_cost:.2f} per 1,000 spent" if per_cost is not None else "")
    )
    for arm in r.get("arms", []):
        per_1000 = (f"{arm['retained_per_1000_cost']:.2f} saved per 1,000 spent (95% CI "
                    f"{arm['retained_per_1000_low']:.2f} to {arm['retained_per_1000_high']:.2f})"
                    if arm["retained_per_1000_cost"] is not None else "no cost")
        answer(f"  {arm['arm']} arm: churn {arm['treated_churn_rate']:.1%} treated (n={arm['treated']}) vs "
               f"{arm['control_churn_rate']:.1%} control (n={arm['control']}); effect {arm['effect']:+.1%} (95% CI "
               f"{arm['ci_low']:+.1%} to {arm['ci_high']:+.1%}); {per_1000}")
    if r.get("comparison"):
        c = r["comparison"]
        per_1000 = (f"; saved per 1,000 spent {c['per_1000_difference']:+.2f} (95% CI {c['per_1000_difference_low']:+.2f} "
                    f"to {c['per_1000_difference_high']:+.2f})" if c["per_1000_difference"] is not None else "")
        answer(f"  {c['first_arm']} - {c['second_arm']}: effect {c['effect_difference']:+.1%} (95% CI "
               f"{c['effect_difference_low']:+.1%} to {c['effect_difference_high']:+.1%}){per_1000}")


@command("demo-campaign", panel=PANEL)
def demo_campaign(
    campaign: str = typer.Argument(..., metavar="CAMPAIGN", help="A planned campaign id."),
    days: int = typer.Option(90, "--days", metavar="DAYS",
                             help="Days the campaign window lasts; the demo advances as many days."),
    effect: float = typer.Option(
        0.3, "--effect", metavar="SHARE",
        help="Planted relative churn reduction for treated customers (0.3: their monthly churn hazard x 0.7; "
             "with the heterogeneous model the strength around which each customer's effect varies)."),
    effect_model: str = typer.Option(
        "heterogeneous", "--effect-model", metavar="MODEL",
        help="heterogeneous: the effect depends on each customer's state (some cannot be saved, some respond "
             "strongly, a few are annoyed by contact); uniform: the same relative effect for everyone."),
    truth_for_everyone: bool = typer.Option(
        False, "--truth-for-everyone",
        help="Also write every customer's true uplift over the window (campaign id + '+everyone' in "
             "uplift_truth.parquet), to score targeting rules against all candidates; the simulation is the same."),
) -> None:
    """Demo only: play a campaign out in the simulated business, with a planted treatment effect.

    Registers the treated customers with the demo simulator (their churn hazard changes by their
    effect during the window) and advances the business by DAYS days; then run `churnwh build` (its as_of
    moves to the day after the new data end) and `churnwh pilot-report`. The true effect per member is
    written beside the demo truth (uplift_truth.parquet), never into the warehouse.

    Example: churnwh demo-campaign spring-2026 --days 90 --effect 0.3
    """
    from churnwh.action import actions

    r = actions.demo_campaign(project_config(), campaign, days, effect, effect_model, truth_for_everyone)
    say(demo_campaign_summary(r, effect))


def demo_campaign_summary(r: dict, effect: float) -> str:
    # planted_effect: the churn-rate gap (control - treated) the simulator's hazards imply for the window,
    # i.e. what pilot-report's effect estimates: the members' mean true uplift
    # (churnwh.sources.demo.advance.planted_effect).
    if r["effect_model"] == "uniform":
        how = f"churn hazard cut by {effect:.0%} (--effect {effect:g}, the same for everyone: --effect-model uniform)"
    else:
        how = (f"churn hazard changed by a per-customer effect of strength {effect:.0%} (--effect {effect:g}, "
               "--effect-model heterogeneous: none for customers who stopped using the product, are disengaging or "
               "have an unresolved ticket; strong for the price-sensitive, those with poor support, falling use or "
               "settling in; weak for the rest; negative for long-tenured customers who ignore e-mail)")
    return (
        f"advanced the demo to {r['data_end']} ({sum(r['rows'].values()):,} raw rows added); campaign "
        f"{r['campaign_id']}: {r['members']} members, {r['treated']} treated; planted effect: treated customers' "
        f"{how} from {r['effect_from']} until {r['window_end']}, "
        f"so their churn rate is expected {100 * r['planted_effect']:.1f} percentage points below control's "
        f"(`churnwh pilot-report` should find an effect near {r['planted_effect']:+.1%}; the true effect per "
        f"member: {r['uplift_truth']}); the next build's as_of = {r['as_of']} (the day after the data end): "
        "run `churnwh build`"
    )


@command("demo-advance", panel=PANEL)
def demo_advance(
    days: int = typer.Option(..., "--days", metavar="DAYS", help="Days to move the simulated business on."),
) -> None:
    """Demo only: move the simulated business on by DAYS days for every customer.

    Usage, purchases, tickets, web visits, e-mail, consent, subscriptions, prices, churn, re-signups and
    new customers continue from the simulator's hidden state; past raw rows stay as they were. The next
    `churnwh build` scores as of the day after the new data end.

    Example: churnwh demo-advance --days 30
    """
    from churnwh.action import actions

    r = actions.demo_advance(project_config(), days)
    say(f"advanced the demo from {r['from']} to {r['data_end']}: {sum(r['rows'].values()):,} raw rows added "
        f"({', '.join(f'{name} {count:,}' for name, count in sorted(r['rows'].items()) if count)}); "
        f"{r['customers']:,} customers so far; the next build's as_of = {r['as_of']}: run `churnwh build`")


@command(panel=PANEL)
def backtest() -> None:
    """Compare past score snapshots with realized churn (by snapshot, tier and decile).

    Example: churnwh backtest
    """
    from churnwh.action import actions

    summary = actions.backtest(project_config())
    table = Table(title="backtest (also in ml.backtest, ml.backtest_by_tier, ml.backtest_by_decile)", show_edge=False)
    for column in summary.columns:
        table.add_column(column)
    for row in summary.iter_rows():
        table.add_row(*[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row])
    out.print(table)


@command(panel=PANEL)
def report(
    output: Path = typer.Option(Path("warehouse/report.html"), "--output", "-o", metavar="FILE",
                                help="HTML file to write (relative paths are in the project folder)."),
    customers: int = typer.Option(25, "--customers", metavar="N",
                                  help="How many customers the 'act on first' table lists (1 to 1000)."),
) -> None:
    """Write one self-contained HTML report to read and print (charts inline, no network needed).

    Example: churnwh report --output warehouse/report.html --customers 50
    """
    from churnwh.action import actions

    if not 1 <= customers <= 1000:
        raise ChurnwhError(f"--customers {customers} is not allowed: give 1 to 1000")
    config = project_config()
    target = output if output.is_absolute() else config.root / output
    say(f"wrote {actions.report(config, target, customers)}")
