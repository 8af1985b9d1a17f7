"""Feed dates: feedparser's reading, made an ISO 8601 string, and the dates it misses.

feedparser reads RFC 822 and W3C dates into a UTC `struct_time`. Two things are
added here:

- `iso_utc` turns its result into `YYYY-MM-DDTHH:MM:SSZ`, or None for a year
  before 1900: Hugo writes `Mon, 01 Jan 0001 00:00:00 +0000` (Go's zero time)
  for an undated page, and `strftime` made that `1-01-01T00:00:00Z`, which is
  not ISO 8601. No clock is read: a date far in the future is kept (it is what
  the feed says, and the parse stays pure); the calendar's end, 9999, bounds it.
- A date handler, registered with feedparser when this module is imported,
  reads the RFC 822 dates a person reads at once but feedparser gives up on:
  French, German, Spanish, Italian, Portuguese and Dutch day and month names
  (`mer., 24 mars 2021 13:10:07 +0100`, `Mi, 04 Okt 2006`), no space after the
  comma (`Wed,16 Nov 2022 …`), no zone at all (read as UTC, as feedparser reads
  a date without a time), and zone names feedparser does not know, which it
  silently reads as UTC (`CET`, `CEST`, `BST`, `JST`, …). Anything feedparser
  reads right is left to it: the handler returns None and feedparser goes on.

Ambiguous zone names are not guessed: `IST` (India, Ireland or Israel), `CST`
and `AST` (feedparser reads them as the American zones), `BST` is British
Summer Time (not Bangladesh), as English-language feeds mean.
"""

from __future__ import annotations

import calendar
import re
import time
import unicodedata
from datetime import UTC, datetime, timedelta

import feedparser
from feedparser.datetimes.rfc822 import _parse_date_rfc822, timezone_names

MIN_YEAR = 1900  # before this, a date is a placeholder (Go's zero time is year 1), not a date
MAX_LENGTH = 80  # the longest date string the handler looks at; RFC 822 dates are ~31
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Bounded repetitions only, on at most MAX_LENGTH characters: linear on any input.
_RFC822ISH = re.compile(
    r"(?:(?P<weekday>[^\W\d_]{1,14}(?:-feira)?)\.?\s{0,3},?\s{0,3})?"
    r"(?P<day>\d{1,2})\.?\s{1,3}"
    r"(?P<month>[^\W\d_]{3,12})\.?,?\s{1,3}"
    r"(?P<year>\d{4}|\d{2})"
    r"(?:,?\s{1,3}(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2}))?"
    r"(?:\s{0,3}(?P<zone>[+-]\d{2}:?\d{2}|[^\W\d_]{1,5}))?)?"
)


def _names(*groups: str) -> dict[str, int]:
    """Month (or day) names → number: each group lists every spelling of one, 1-based."""
    return {
        _folded(name): number for number, group in enumerate(groups, 1) for name in group.split()
    }


def _folded(name: str) -> str:
    """Lower case without accents or dots: `Mär.` and `mar` and `févr` and `fevr` alike."""
    decomposed = unicodedata.normalize("NFKD", name.casefold().rstrip("."))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


# en, fr, de, es, it, pt, nl: the glibc locales' abbreviations and the full names.
MONTHS = _names(
    "jan january janv janvier januar jänner jaenner ene enero gen gennaio janeiro januari",
    "feb february fév févr février februar febrero febbraio fev fevereiro februari",
    "mar march mars mär maer mrz märz maerz marzo março mrt maart",
    "apr april avr avril abr abril aprile",
    "may mai mayo mag maggio maio mei",
    "jun june juin juni junio giu giugno junho",
    "jul july juil juillet juli julio lug luglio julho",
    "aug august août aou ago agosto augustus",
    "sep sept september septembre septiembre setiembre set settembre setembro",
    "oct october octobre okt oktober octubre ott ottobre out outubro",
    "nov november novembre noviembre novembro",
    "dec december déc décembre dez dezember dic diciembre dicembre dezembro",
)
# Ignored once recognised (feedparser ignores English ones too): only a known name passes.
WEEKDAYS = frozenset(
    _names(
        "mon monday lun lundi mo montag lunes lunedì seg segunda segunda-feira ma maandag",
        "tue tues tuesday mar mardi di dienstag martes martedì ter terça terça-feira dinsdag",
        "wed wednesday mer mercredi mi mittwoch mié miércoles mercoledì qua quarta "
        "quarta-feira wo woensdag",
        "thu thur thurs thursday jeu jeudi do donnerstag jue jueves gio giovedì qui quinta "
        "quinta-feira donderdag",
        "fri friday ven vendredi fr freitag vie viernes venerdì sex sexta sexta-feira vr vrijdag",
        "sat saturday sam samedi sa samstag sonnabend sáb sábado sab sabato za zaterdag",
        "sun sunday dim dimanche so sonntag dom domingo domenica zo zondag",
    )
)
# Hours east of UTC, of names feedparser does not know (it reads them as UTC).
ZONES = {
    "wet": 0.0,
    "west": 1.0,
    "bst": 1.0,
    "cet": 1.0,
    "mez": 1.0,  # German for CET
    "cest": 2.0,
    "mesz": 2.0,
    "eet": 2.0,
    "eest": 3.0,
    "msk": 3.0,
    "hkt": 8.0,
    "sgt": 8.0,
    "awst": 8.0,
    "jst": 9.0,
    "kst": 9.0,
    "acst": 9.5,
    "aest": 10.0,
    "aedt": 11.0,
    "nzst": 12.0,
    "nzdt": 13.0,
    "hst": -10.0,
    "akst": -9.0,
    "akdt": -8.0,
    "ndt": -2.5,
    "nst": -3.5,
}
_ZONE_HOURS = {**timezone_names, "utc": 0, **ZONES}  # every name the handler reads


def as_stamped_before(parsed: object) -> str | None:
    """The date as `published` was written before MIN_YEAR was a floor (`strftime`'s
    `%Y` does not pad: year 1 is `1-01-01T00:00:00Z`): what the hash naming an item with
    no guid and no link was made of, and must stay made of."""
    if not isinstance(parsed, time.struct_time):
        return None
    try:
        moment = datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC)
    except (OverflowError, ValueError, OSError):
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_utc(parsed: object) -> str | None:
    """feedparser's UTC `struct_time` as `YYYY-MM-DDTHH:MM:SSZ`; None for no date or a
    placeholder before MIN_YEAR. `timegm` normalises fields out of range, as before."""
    if not isinstance(parsed, time.struct_time):
        return None
    try:
        moment = _EPOCH + timedelta(seconds=calendar.timegm(parsed))
    except (OverflowError, ValueError):
        return None
    if moment.year < MIN_YEAR:
        return None
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}Z"
    )


# An English RFC 822 date with a zone feedparser knows: most dates of most feeds.
_PLAIN_RFC822 = re.compile(
    r"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?\d{1,2} "
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}(?::\d{2})? "
    r"(?:[+-]\d{4}|GMT|UTC?|Z|[ECMP][SD]T)"
)


def parse_date(value: str) -> time.struct_time | None:
    """An RFC 822-like date feedparser misreads or gives up on, as a UTC `struct_time`;
    None for anything else, so that feedparser's own handlers read it (a feedparser
    date handler: it gets every date string first)."""
    if not isinstance(value, str) or len(value) > MAX_LENGTH:
        return None
    value = value.strip()
    if _PLAIN_RFC822.fullmatch(value):
        return None  # the common case, which feedparser reads right: not read twice
    match = _RFC822ISH.fullmatch(value)
    if match is None:
        return None
    zone = (match["zone"] or "").casefold()
    if zone not in ZONES and _parse_date_rfc822(value) is not None:
        return None  # feedparser reads it right
    return _read(match, zone)


def _read(match: re.Match[str], zone: str) -> time.struct_time | None:
    weekday, month = match["weekday"], MONTHS.get(_folded(match["month"]))
    if month is None or (weekday and _folded(weekday) not in WEEKDAYS):
        return None
    offset = _offset(zone)
    if offset is None:
        return None
    year = int(match["year"])
    if len(match["year"]) == 2:
        year += 2000 if year < 90 else 1900  # as feedparser reads two-digit years
    try:
        moment = datetime(
            year,
            month,
            int(match["day"]),
            int(match["hour"] or 0),
            int(match["minute"] or 0),
            int(match["second"] or 0),
        )
        return (moment - offset).utctimetuple()
    except (ValueError, OverflowError):
        return None


def _offset(zone: str) -> timedelta | None:
    """A zone's offset east of UTC: `+0100`, `-05:30`, a name; none given is UTC."""
    if not zone:
        return timedelta(0)
    if zone[0] in "+-":
        digits = zone[1:].replace(":", "")
        sign = -1 if zone[0] == "-" else 1
        return sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    hours = _ZONE_HOURS.get(zone)
    return None if hours is None else timedelta(hours=hours)


feedparser.registerDateHandler(parse_date)
