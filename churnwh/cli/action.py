"""From scores to action: plan, pilot-report, demo-campaign, backtest, report (churnwh.action.actions)."""

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
) -> None:
    """Select customers to contact within a budget (maximum expected saved value), with a control group.

    Example: churnwh plan --campaign spring-2026 --budget 5000 --cost high=40 --cost medium=8
    """
    from churnwh.action import actions

    result = actions.plan(project_config(), campaign, budget, cost, success_rate, control_fraction)
    say(
        f"campaign {result['campaign_id']}: {result['selected']} customers selected ({result['treated']} to contact, "
        f"{result['control']} control), cost {result['treated_cost']:,.2f} of {result['budget']:,.2f}, expected "
        f"saved value {result['expected_saved_value']:,.2f}; see ml.retention_plan (ml.churn_scores.campaign_group "
        "is updated; the published file shows it after the next `churnwh score` or `churnwh build`)"
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


@command("demo-campaign", panel=PANEL)
def demo_campaign(
    campaign: str = typer.Argument(..., metavar="CAMPAIGN", help="A planned campaign id."),
    days: int = typer.Option(90, "--days", metavar="DAYS", help="Days of outcome to simulate after the campaign date."),
    effect: float = typer.Option(
        0.3, "--effect", metavar="SHARE",
        help="Planted relative churn reduction for treated customers (0.3: their churn probability x 0.7)."),
    seed: int = typer.Option(0, "--seed", metavar="N", help="Random seed of the simulated outcomes."),
) -> None:
    """Demo only: simulate the campaign's outcome in the raw data, with a planted treatment effect.

    Then set vars.as_of to the printed date, run `churnwh build --allow-stale` (no activity is simulated, so
    the activity sources are stale) and `churnwh pilot-report`.

    Example: churnwh demo-campaign spring-2026 --days 90 --effect 0.3
    """
    from churnwh.action import actions

    r = actions.demo_campaign(project_config(), campaign, days, effect, seed)
    say(demo_campaign_summary(r, effect))


def demo_campaign_summary(r: dict, effect: float) -> str:
    # planted_effect is effect x the members' mean churn probability: the churn-rate gap between
    # treated and control that the simulation expects, i.e. what pilot-report's effect estimates.
    return (
        f"simulated {r['members']} members, {r['churned']} churned; planted effect: treated customers' churn "
        f"probability cut by {effect:.0%} (--effect {effect:g}), so their churn rate is expected "
        f"{100 * r['planted_effect']:.1f} percentage points below control's (`churnwh pilot-report` should find an "
        f"effect near {-r['planted_effect']:+.1%}); set as_of = {r['window_end']} under [vars] in churnwh.toml and "
        "run `churnwh build --allow-stale` (only churn was simulated, no activity: without the flag the build "
        "refuses the stale activity data)"
    )


@command(panel=PANEL)
def backtest() -> None:
    """Compare past score snapshots with realized churn (by snapshot, tier and decile).

    Example: churnwh backtest
    """
    from churnwh.action import actions

    config = project_config()
    summary = actions.backtest(config)
    ends = actions.data_end(config)
    answer(f"data end {ends or 'not measured (run `churnwh build`)'}; as-of date {config.variables.get('as_of')}")
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
