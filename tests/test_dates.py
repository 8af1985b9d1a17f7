"""Feed dates: ISO 8601 always (a 4-digit year, or null for a placeholder year), and the
RFC 822 dates feedparser gives up on or misreads, read as a person reads them.

The real strings are in tests/fixtures/hostile/undated-and-localised-dates.xml (its
comment says where each comes from); these tests read them through `parse_feed`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import feedparser
import pytest
from feedparser.datetimes import _parse_date
from feedparser.datetimes.rfc822 import _parse_date_rfc822
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import FIXTURES
from watcher.dates import MAX_LENGTH, iso_utc, parse_date
from watcher.feed import parse_feed

DATES_FEED = FIXTURES / "hostile" / "undated-and-localised-dates.xml"


def published(date: str) -> str | None:
    """`published` of a one-item feed with this pubDate, as the watcher reads it."""
    document = (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
        f"<item><title>t</title><guid>g</guid><pubDate>{date}</pubDate></item>"
        "</channel></rss>"
    ).encode()
    [talk] = parse_feed(document).talks
    return talk.published


def test_the_real_dates_are_read():
    talks = {talk.guid: talk.published for talk in parse_feed(DATES_FEED.read_bytes()).talks}
    assert talks == {
        "hugo": None,
        "fr-avr": "2021-04-06T05:38:50Z",
        "fr-fevr": "2021-02-22T20:17:57Z",
        "fr-mars": "2021-03-24T12:10:07Z",
        "fr-janv": "2021-01-22T17:21:28Z",
        "fr-dec": "2020-12-30T08:02:22Z",
        "fr-sept": "2020-09-30T12:18:02Z",
        "fr-aout": "2020-08-31T19:07:18Z",
        "fr-juil": "2020-07-29T12:56:54Z",
        "fr-mai": "2020-05-24T13:41:37Z",
        "de-okt": "2006-10-04T12:14:28Z",
        "no-space": "2022-11-15T23:38:15Z",
        "pst": "2022-11-16T08:38:15Z",
        "cet": "2022-11-15T23:38:15Z",
        "no-zone": "2022-11-16T00:38:15Z",
    }


@pytest.mark.parametrize(
    "date",
    [
        "Mon, 01 Jan 0001 00:00:00 +0000",  # Hugo, Go's zero time
        "0001-01-01T00:00:00Z",  # the same in an Atom feed
        "Sat, 31 Dec 1899 23:59:59 +0000",
    ],
)
def test_a_year_before_1900_is_no_date(date):
    assert published(date) is None


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        ("Mon, 01 Jan 1900 00:00:00 +0000", "1900-01-01T00:00:00Z"),
        ("Thu, 01 Jan 1970 00:00:00 +0000", "1970-01-01T00:00:00Z"),
        ("Fri, 31 Dec 9999 23:59:59 +0000", "9999-12-31T23:59:59Z"),
        ("Fri, 01 Jan 0100 00:00:00 +0000", None),
    ],
)
def test_published_always_has_a_four_digit_year(date, expected):
    assert published(date) == expected


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        # day and month names: fr, de, es, it, pt, nl; with dots or not, any case
        ("mer, 16 nov 2022 00:38:15 +0100", "2022-11-15T23:38:15Z"),
        ("lun. 16 janv. 2023 10:00:00 +0100", "2023-01-16T09:00:00Z"),
        ("jeu., 02 févr. 2023 10:00:00 +0100", "2023-02-02T09:00:00Z"),
        ("JEU., 02 FEVR. 2023 10:00:00 +0100", "2023-02-02T09:00:00Z"),
        ("sam., 14 juin 2025 10:00:00 +0200", "2025-06-14T08:00:00Z"),
        ("Do, 09 Mär 2023 10:00:00 +0100", "2023-03-09T09:00:00Z"),
        ("Di., 12. Dez. 2023 10:00:00 +0100", "2023-12-12T09:00:00Z"),
        ("Fr, 13 Okt 2023 10:00:00 MESZ", "2023-10-13T08:00:00Z"),
        ("mié, 18 ene 2023 10:00:00 +0100", "2023-01-18T09:00:00Z"),
        ("sáb, 15 abr 2023 10:00:00 -0300", "2023-04-15T13:00:00Z"),
        ("vie, 22 dic 2023 10:00:00 +0100", "2023-12-22T09:00:00Z"),
        ("gio, 17 ago 2023 10:00:00 +0200", "2023-08-17T08:00:00Z"),
        ("mar, 12 set 2023 10:00:00 +0200", "2023-09-12T08:00:00Z"),
        ("qua, 11 out 2023 10:00:00 -0300", "2023-10-11T13:00:00Z"),
        ("wo, 10 mei 2023 10:00:00 +0200", "2023-05-10T08:00:00Z"),
        ("di, 17 okt 2023 10:00:00 +0200", "2023-10-17T08:00:00Z"),
        ("16 novembre 2022 00:38:15 +0100", "2022-11-15T23:38:15Z"),
        # no space after the comma; no zone (UTC, as feedparser reads a date alone)
        ("Wed,16 Nov 2022 00:38:15 +0100", "2022-11-15T23:38:15Z"),
        ("Wed, 16 Nov 2022 00:38:15", "2022-11-16T00:38:15Z"),
        ("Wed, 16 Nov 22 00:38 +01:00", "2022-11-15T23:38:00Z"),
        ("mer, 16 nov 22 00:38 +01:00", "2022-11-15T23:38:00Z"),  # two-digit years as
        ("mer, 16 nov 98 00:38 -01:00", "1998-11-16T01:38:00Z"),  # feedparser reads them
        # zone names: feedparser's (US) and those it read as UTC
        ("Wed, 16 Nov 2022 00:38:15 PST", "2022-11-16T08:38:15Z"),
        ("Wed, 16 Nov 2022 00:38:15 EDT", "2022-11-16T04:38:15Z"),
        ("Wed, 16 Nov 2022 00:38:15 CET", "2022-11-15T23:38:15Z"),
        ("Wed, 16 Nov 2022 00:38:15 CEST", "2022-11-15T22:38:15Z"),
        ("Wed, 16 Nov 2022 00:38:15 BST", "2022-11-15T23:38:15Z"),
        ("Wed, 16 Nov 2022 09:00:00 JST", "2022-11-16T00:00:00Z"),
        ("Wed, 16 Nov 2022 10:00:00 AEST", "2022-11-16T00:00:00Z"),
        ("mer, 16 nov 2022 00:38:15 UTC", "2022-11-16T00:38:15Z"),
        ("mer, 16 nov 2022 00:38:15 GMT", "2022-11-16T00:38:15Z"),
    ],
)
def test_dates_a_person_reads_are_read(date, expected):
    assert published(date) == expected


@pytest.mark.parametrize(
    "date",
    [
        "next Tuesday, probably",
        "mer, 31 fév 2023 10:00:00 +0100",  # no such day
        "blah, 16 nov 2022 00:38:15 +0100",  # no such weekday
        "mer, 16 brumaire 2022 00:38:15 +0100",  # no such month
        "mer, 16 nov 2022 00:38:15 XYZ",  # no such zone
        "mer, 16 nov 2022 25:38:15 +0100",
        "Wed, 16 Nov 2022 00:38:15 IST",  # ambiguous: feedparser's reading (UTC) stands
    ],
)
def test_other_strings_are_left_to_feedparser(date):
    assert parse_date(date) is None


def test_what_feedparser_reads_it_reads_as_before():
    """The handler runs first on every date: it must step aside for feedparser's own."""
    assert feedparser.datetimes._date_handlers[0] is parse_date
    for date in (
        "Wed, 16 Nov 2022 00:38:15 +0100",
        "16 Nov 2022",
        "Wed, 16 Nov 2022 00:38:15 EST",
        "2022-11-16T00:38:15+01:00",
    ):
        assert parse_date(date) is None, date


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(9999, 12, 30)),
    st.integers(-14 * 60, 14 * 60),
)
def test_any_standard_rfc822_date_reads_as_feedparser_alone_reads_it(moment, minutes):
    date = format_datetime(moment.replace(tzinfo=UTC).astimezone(_zone(minutes)))
    assert _parse_date(date) == _parse_date_rfc822(date)


def _zone(minutes: int):
    from datetime import timezone

    return timezone(timedelta(minutes=minutes))


@pytest.mark.parametrize(
    "hostile",
    [
        "mer, " * 100_000,
        "mer" * 30_000 + "!",
        "Wed " * 30_000 + "16 nov",
        "1" * 1_000_000,
        "mer., 16 " + " " * 500_000 + "nov 2022",
        "a" * 79 + "," + " 16 nov 2022 00:38:15 +0100",
    ],
)
def test_hostile_strings_are_rejected_at_once(hostile):
    started = time.monotonic()
    assert parse_date(hostile) is None
    assert published(hostile[:200_000]) is None
    assert time.monotonic() - started < 1


def test_every_string_up_to_the_cap_is_read_in_linear_time():
    worst = "mer" + "." * 3 + " " * 3 + "," + "1" * (MAX_LENGTH - 8)
    started = time.monotonic()
    for _ in range(1000):
        parse_date(worst)
    assert time.monotonic() - started < 1


@pytest.mark.parametrize(
    ("parsed", "expected"),
    [
        (time.struct_time((2026, 6, 8, 0, 0, 0, 0, 159, 0)), "2026-06-08T00:00:00Z"),
        (time.struct_time((1, 1, 1, 0, 0, 0, 0, 1, 0)), None),
        (time.struct_time((2026, 6, 8, 23, 59, 60, 0, 159, 0)), "2026-06-09T00:00:00Z"),
        ("2026-06-08", None),
        (None, None),
    ],
)
def test_iso_utc(parsed, expected):
    assert iso_utc(parsed) == expected
