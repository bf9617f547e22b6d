"""Working days in mainland China, for case deadlines ("15 working days").

A working day is Monday to Friday, minus the official public holidays, plus the weekend days the
State Council moves work to (调休, e.g. Saturday 2026-10-10 after the National Day week). The days
come from the maintained ``chinesecalendar`` package, which carries each year's arrangement once it is
published (each December for the next year). For a year it does not know yet, a deadline is counted
Monday to Friday and marked *estimated*; ``cases.holidays`` and ``cases.working_days`` in
``hegui.yaml`` add days announced since the installed release.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

import chinese_calendar


@dataclass(frozen=True)
class DueDate:
    day: date
    estimated: bool
    """True when a day counted lies in a year ``chinesecalendar`` has no arrangement for."""


class WorkingCalendar:
    """``is_working_day`` and ``add_working_days`` with the provider's own corrections."""

    def __init__(self, holidays: Iterable[date] = (), working_days: Iterable[date] = ()) -> None:
        self.holidays = frozenset(holidays)
        self.working_days = frozenset(working_days)

    def known(self, day: date) -> bool:
        """Whether the official arrangement for ``day``'s year is known (in the package or the config)."""
        if day in self.holidays or day in self.working_days:
            return True
        try:
            chinese_calendar.is_workday(day)
        except NotImplementedError:
            return False
        return True

    def is_working_day(self, day: date) -> bool:
        if day in self.holidays:
            return False
        if day in self.working_days:
            return True
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:
            return day.weekday() < 5

    def add_working_days(self, start: date, days: int) -> DueDate:
        """The ``days``-th working day after ``start`` (``start`` itself is not counted: a case opened
        on a Friday with 1 working day is due the next working day)."""
        if days < 1:
            raise ValueError("days must be at least 1")
        day, counted, estimated = start, 0, False
        while counted < days:
            day += timedelta(days=1)
            if not self.known(day):
                estimated = True
            if self.is_working_day(day):
                counted += 1
        return DueDate(day, estimated)

    def working_days_between(self, start: date, end: date) -> int:
        """Working days after ``start`` up to and including ``end`` (0 when ``end <= start``)."""
        n, day = 0, start
        while day < end:
            day += timedelta(days=1)
            n += self.is_working_day(day)
        return n
