"""Privacy commands: keygen, forget, rotate-key, contacts, subject-report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from churnwh.cli.common import State, answer, command, note, project_config, say
from churnwh.cli.progress import display
from churnwh.privacy import keys

PANEL = "Privacy"


@command(panel=PANEL)
def keygen(
    path: Optional[Path] = typer.Option(None, "--path", metavar="FILE",
                                        help="Where to write the key (default: key.file of the project's config)."),
) -> None:
    """Create a new random pseudonym key file with mode 0600 (never overwrites an existing key).

    With --path it works anywhere; without, it writes the project's key.file.

    Example: churnwh keygen --path ~/.config/churnwh/prod.key
    """
    target = path or project_config().key.file
    keys.generate_key_file(target)
    say(f"wrote a new key to {target} (mode 0600); keep it out of git and backups of the warehouse")


@command(panel=PANEL)
def forget(
    customer_ids: Optional[list[str]] = typer.Argument(None, metavar="ID...", help="Customer ids to erase."),
    file: Optional[Path] = typer.Option(None, "--file", "-f", metavar="FILE", help="A file with one customer id per line."),
) -> None:
    """Erase customers from raw and derived tables and from the bytes of both files (GDPR Art. 17).

    Example: churnwh forget C00000042 --file erasure_requests.txt
    """
    from churnwh.pipeline import forget as run_forget
    from churnwh.privacy.erasure import read_id_file

    config = project_config()
    ids = list(customer_ids or [])
    if file is not None:
        ids += read_id_file(file)
    with display(note, State.verbosity) as progress:
        progress.stage("erase")
        result = run_forget(config, ids)
    say(
        f"erasure request {result.request_id}: {result.found} of {result.requested} customers found and erased "
        f"({result.rows_deleted.get('raw', 0)} raw rows, {result.rows_deleted.get('derived', 0)} derived rows); "
        "private file rewritten, published file rebuilt; the next build retrains the model" + result.hint
    )


@command("rotate-key", panel=PANEL)
def rotate_key() -> None:
    """Create a new pseudonym key, re-pseudonymize every customer and rebuild everything.

    The old key is destroyed (old and new pseudonyms share nothing); back it up first if you must.

    Example: churnwh rotate-key
    """
    from churnwh.pipeline import rotate_key as run_rotation

    config = project_config()
    with display(note, State.verbosity) as progress:
        old, new = run_rotation(config, on_stage=progress.stage)
    say(f"key rotated: version {old} -> {new}; every pseudonym recomputed, both files rebuilt")


@command(panel=PANEL)
def contacts(
    tier: Optional[str] = typer.Option(None, "--tier", metavar="TIER",
                                       help="Risk tier to export: high (default), medium or low."),
    campaign: Optional[str] = typer.Option(None, "--campaign", metavar="ID",
                                           help="Export this campaign's treated group instead."),
    output: Path = typer.Option(Path("contacts.csv"), "--output", "-o", metavar="FILE",
                                help="CSV file to write (mode 0600)."),
) -> None:
    """Re-identify the customers to contact who consented to marketing, as a CSV for the retention team.

    Control groups of running campaigns are always left out; each row carries its top reasons in words.
    Every use is logged in the audit log with its row count.

    Example: churnwh contacts --tier high --output retention/high_risk.csv
    """
    from churnwh.action.contacts import export

    r = export(project_config(), output, tier=tier, campaign=campaign)
    what = f"treated customers of campaign {campaign}" if campaign else f"{r.tier}-risk customers"
    say(f"wrote {r.rows} contactable {what} to {output} (mode 0600); the export is logged")
    if r.held_back:
        say(f"held back {r.held_back} in the control group of a running pilot "
            f"({', '.join(r.active_campaigns)}): contacting them would spoil it")


@command("subject-report", panel=PANEL)
def subject_report(customer_id: str = typer.Argument(..., metavar="ID", help="The customer id as in the source.")) -> None:
    """Print what churnwh holds about one person and the main reasons for their score (GDPR Art. 15).

    Example: churnwh subject-report C00000042
    """
    from churnwh.privacy.access import subject_report as run_report

    report = run_report(project_config(), customer_id)
    if not report.found:
        answer("churnwh holds no data about this customer id")
        return
    answer(f"pseudonym: {report.pseudonym}")
    answer("source rows: " + ", ".join(f"{name} {count}" for name, count in report.raw_rows.items()))
    answer("derived rows: " + (", ".join(f"{name} {count}" for name, count in report.derived_rows.items()) or "none"))
    for row in report.consent:
        reason = f" ({row['withdrawal_reason']})" if row.get("withdrawal_reason") else ""
        answer(f"consent {row['purpose']}: {row['state']}{reason} since {row['valid_from']}")
    if not any(row["purpose"] == "profiling" for row in report.consent):
        answer("consent profiling: no decision recorded (profiled under legitimate interest)")
    if report.score:
        s = report.score
        answer(
            f"score: churn probability {s['churn_probability']:.3f}, tier {s['risk_tier']}, action {s['action']}, "
            f"as of {s['as_of']}, model {s['model_version']}"
        )
    else:
        answer("score: none (not scored: inactive, objected to profiling, or no model yet)")
    for reason in report.reasons:
        answer("reason: " + ", ".join(f"{k} {v}" for k, v in reason.items()))
