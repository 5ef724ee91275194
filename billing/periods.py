"""Billing periods, all in UTC: where a day and a month start, whatever the caller's time zone."""

from datetime import UTC, date, datetime


def day_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def month_start(now: datetime) -> datetime:
    return day_start(now).replace(day=1)


def next_month_start(moment: datetime | date) -> datetime:
    year, month = moment.year + moment.month // 12, moment.month % 12 + 1
    return datetime(year, month, 1, tzinfo=UTC)


def as_utc_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
