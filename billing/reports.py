"""Presentation of billing data for people: statement CSV and HTML, the staff report's CSV and its SVG chart."""

from collections.abc import Iterable, Iterator
from datetime import date

from django.http import HttpResponse
from django.template.loader import render_to_string
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from billing.models import Statement, StatementLine
from billing.money import micros_to_dollars, micros_to_usd
from billing.selectors.reports import ReportRow
from project.streaming_csv import csv_lines


def statement_csv_rows(statement: Statement) -> Iterator[list[str]]:
    """One row per line: `charge` is `images` (images × unit price = amount) or `canceled` (the upstream cost of
    generations canceled while running: no image delivered, no unit price)."""
    yield ["model", "quality", "size", "charge", "images", "unit_price_usd", "amount_usd"]
    for line in statement.lines.all():
        canceled = line.charge == StatementLine.Charge.CANCELED
        yield [
            line.model_id,
            line.quality,
            line.size,
            line.charge,
            str(line.images),
            "" if canceled else micros_to_usd(line.unit_price_micros),
            micros_to_usd(line.amount_micros),
        ]
    yield ["total", "", "", "", str(statement.images), "", micros_to_usd(statement.charges_micros)]


def statement_filename(statement: Statement, extension: str) -> str:
    return f"statement-{statement.tenant.slug}-{statement.period_start:%Y-%m}.{extension}"


def statement_html(statement: Statement) -> str:
    return render_to_string(
        "billing/statement.html", {"statement": statement, "lines": statement.lines.all()}
    )


def statement_csv_response(statement: Statement) -> HttpResponse:
    response = HttpResponse("".join(csv_lines(statement_csv_rows(statement))), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{statement_filename(statement, "csv")}"'
    return response


REPORT_MONEY_COLUMNS = ["price_usd", "cost_usd", "refunded_cost_usd", "margin_usd"]
# Estimate against actual upstream cost over the captures whose actual cost is known (`actual_images` of `images`);
# empty where none is known (an unknown is not a zero).
REPORT_ACTUAL_COLUMNS = ["actual_images", "actual_cost_usd", "actual_estimate_usd", "actual_drift_percent"]


def report_csv_rows(group_names: list[str], rows: Iterable[ReportRow]) -> Iterator[list[str]]:
    yield [*group_names, "requests", "images", *REPORT_MONEY_COLUMNS, *REPORT_ACTUAL_COLUMNS]
    for row in rows:
        known = row.actual_images > 0
        drift = row.actual_drift_percent
        yield [
            *(str(value) if value is not None else "" for value in row.group),
            str(row.requests),
            str(row.images),
            micros_to_usd(row.price_micros),
            micros_to_usd(row.cost_micros),
            micros_to_usd(row.refunded_cost_micros),
            micros_to_usd(row.margin_micros),
            str(row.actual_images),
            micros_to_usd(row.actual_cost_micros) if known else "",
            micros_to_usd(row.actual_estimate_micros) if known else "",
            "" if drift is None else str(drift),
        ]


CHART_WIDTH, CHART_HEIGHT, CHART_PAD = 760, 220, 30


def daily_chart_svg(days: list[tuple[date, ReportRow]]) -> SafeString:
    """Side-by-side bars per day: price charged (blue) and upstream cost incl. refunded calls (orange)."""
    if not days:
        return format_html('<p class="help">{}</p>', "No billed activity in this period.")
    peak = max(max(row.price_micros, row.cost_micros + row.refunded_cost_micros) for _, row in days) or 1
    slot = (CHART_WIDTH - 2 * CHART_PAD) / len(days)
    bar = max(slot / 2 - 1, 1)
    plot_height = CHART_HEIGHT - 2 * CHART_PAD

    def height(micros: int) -> float:
        return round(plot_height * micros / peak, 1)

    bars = []
    for index, (day, row) in enumerate(days):
        x = CHART_PAD + index * slot
        cost = row.cost_micros + row.refunded_cost_micros
        for offset, micros, colour, label in (
            (0, row.price_micros, "#417690", "price"),
            (bar, cost, "#e8a33d", "cost"),
        ):
            bars.append(
                (
                    round(x + offset, 1),
                    round(CHART_HEIGHT - CHART_PAD - height(micros), 1),
                    round(bar, 1),
                    height(micros),
                    colour,
                    f"{day:%Y-%m-%d} {label} {micros_to_dollars(micros)}",
                )
            )
    rects = format_html_join(
        "", '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}</title></rect>', bars
    )
    first, last = days[0][0], days[-1][0]
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
        'aria-label="Daily price and cost">'
        '<line x1="{p}" y1="{base}" x2="{right}" y2="{base}" stroke="#999"/>{rects}'
        '<text x="{p}" y="{label_y}" font-size="11">{first}</text>'
        '<text x="{right}" y="{label_y}" font-size="11" text-anchor="end">{last}</text>'
        '<text x="{p}" y="16" font-size="11">peak {peak} · blue: price · orange: upstream cost</text></svg>',
        w=CHART_WIDTH,
        h=CHART_HEIGHT,
        p=CHART_PAD,
        base=CHART_HEIGHT - CHART_PAD,
        right=CHART_WIDTH - CHART_PAD,
        rects=rects,
        label_y=CHART_HEIGHT - 10,
        first=f"{first:%Y-%m-%d}",
        last=f"{last:%Y-%m-%d}",
        peak=micros_to_dollars(peak),
    )
