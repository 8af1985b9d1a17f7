"""A fetched feed's bytes → the UTF-8 document feedparser's parsers are given, made safe.

Feeds are untrusted. Before feedparser sees a document it is converted to UTF-8
(as feedparser would), numeric references to no character are replaced, and a
document that declares XML entities is refused: they are how a feed reads local
files or URLs (XXE) or expands a few KB into gigabytes ("billion laughs").

Where feedparser's reading of the bytes goes wrong, it is done here first: UTF-8
with a few bad bytes is read as UTF-8 (feedparser falls back to windows-1252,
turning every non-ASCII character into mojibake), UTF-16 or UTF-32 without a
byte-order mark is recognised by its NUL bytes, and a compressed file, an archive,
a PDF or an image is named as what it is rather than "not well-formed".
"""

from __future__ import annotations

import codecs
import re
import xml.parsers.expat
from typing import Any

from feedparser.encodings import (
    EBCDIC_MARKER,
    RE_XML_DECLARATION,
    RE_XML_PI_ENCODING,
    convert_to_utf8,
)
from feedparser.sanitizer import replace_doctype

from watcher.text import describe

_UTF8_DECLARATION = "<?xml version='1.0' encoding='utf-8'?>\n"
_FEEDPARSER_DECLARATION = b"<?xml version='1.0' encoding='utf-8'?>"  # as convert_to_utf8 writes it
_XML_DECLARATION_BYTES = re.compile(RE_XML_DECLARATION.pattern.encode())
# Long numeric references may name no character (past U+10FFFF, or a surrogate):
# feedparser's fallback parser calls chr() on them and raises, losing the whole document.
_BIG_CHAR_REF = re.compile(rb"&#(?:[xX]0*([0-9a-fA-F]{4,})|0*([0-9]{5,}));")
# The declared encoding, where feedparser looks (the first line), in ASCII or UTF-16/32.
_DECLARED_ENCODING = re.compile(
    b"\0{0,3}".join(bytes([c]) for c in b"encoding=") + rb"\0{0,3}[\"']([^\"']{0,200})[\"']"
)
_MARKS = (  # UTF-32 before UTF-16: their little-endian BOMs begin alike
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF16_BE, "utf-16"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (EBCDIC_MARKER, "cp037"),
    (b"\0\0\0<", "utf-32-be"),
    (b"<\0\0\0", "utf-32-le"),
    (b"\0<", "utf-16-be"),
    (b"<\0", "utf-16-le"),
)
# Python decodes these in quadratic time: a 1 MB punycode feed takes minutes.
_SLOW_CODECS = ("punycode", "idna")
# How files that are not text begin (their "magic numbers"): never a feed.
_BINARY = (
    (b"\x1f\x8b", "a gzip-compressed file"),
    (b"PK\x03\x04", "a zip archive"),
    (b"PK\x05\x06", "a zip archive"),  # an empty one
    (b"BZh", "a bzip2-compressed file"),
    (b"\xfd7zXZ\x00", "an xz-compressed file"),
    (b"\x28\xb5\x2f\xfd", "a zstd-compressed file"),
    (b"7z\xbc\xaf\x27\x1c", "a 7z archive"),
    (b"%PDF-", "a PDF document"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
)
_BOMS = tuple(mark for mark, _ in _MARKS[:4])  # UTF-32 and UTF-16
# UTF-16 and UTF-32 without a BOM: (codec, code unit size, where an ASCII character's
# byte is in its unit). UTF-32 first: its units look like two UTF-16 units.
_WIDE_CODECS = (("utf-32-le", 4, 0), ("utf-32-be", 4, 3), ("utf-16-le", 2, 0), ("utf-16-be", 2, 1))
_WIDE_SAMPLE = 256  # bytes looked at: the XML declaration and the first tags


class Refused(Exception):
    """The document is not read at all: the message says why."""


class NotAFeed(Refused):
    """The document is something else (an archive, an image): the message says what."""


def prepared(data: bytes) -> tuple[bytes, list[str]]:
    """The document as feedparser's parsers will see it (UTF-8), made safe to give them."""
    document, warnings = _utf8(data)
    # One byte is looked for first: memchr is a twentieth of the time of a search for
    # "&#" in a document full of "&lt;".
    if b"#" in document:
        document = _BIG_CHAR_REF.sub(_char_ref, document)
    if b"!" in document and b"<!ENTITY" in document and _declares_entities(document):
        raise Refused("it declares XML entities, which can read files or URLs or expand to GBs")
    return document, warnings


def _utf8(data: bytes) -> tuple[bytes, list[str]]:
    """What feedparser does first, done here so that the checks see what its parsers see;
    and done better where feedparser would read the document wrong (see the module)."""
    _refuse_binary(data)
    wide = _unmarked_wide(data)
    if wide is not None:
        return wide
    document = utf8_as_feedparser_would(data)
    if document is not None:
        return document, []
    mostly = _mostly_utf8(data)
    if mostly is not None:
        return mostly
    result: dict[str, Any] = {}
    try:
        _refuse_slow_codecs(data)
        document = convert_to_utf8({}, data, result)
    except (UnicodeError, LookupError) as exc:  # e.g. UTF-7 that decodes to lone surrogates
        encoding = _sniffed(data)
        text = data.decode(encoding, "replace").lstrip("\ufeff")
        document = (_UTF8_DECLARATION + RE_XML_DECLARATION.sub("", text, count=1)).encode()
        return document, [f"unusable encoding ({describe(exc)}): read as {encoding}"]
    problem = result.get("bozo_exception")
    return document, [f"malformed feed: {describe(problem)}"] if problem else []


def utf8_as_feedparser_would(data: bytes) -> bytes | None:
    """`convert_to_utf8` of the common case, a third of its time: a UTF-8 document with no
    BOM, declared as UTF-8 or not at all, comes out byte for byte as it went in, but for its
    XML declaration. None for any other document: feedparser's own code handles those."""
    if any(data.startswith(mark) for mark, _ in _MARKS):
        return None
    declared = RE_XML_PI_ENCODING.match(data)
    if declared and declared.group(1).decode("utf-8", "replace").lower() != "utf-8":
        return None
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return None
    declaration = _XML_DECLARATION_BYTES.match(data)
    if declaration:
        return _FEEDPARSER_DECLARATION + data[declaration.end() :]
    return _FEEDPARSER_DECLARATION + b"\n" + data


def _refuse_binary(data: bytes) -> None:
    for magic, what in _BINARY:
        if data.startswith(magic):
            raise NotAFeed(what)


# A BOM, EBCDIC, or "<?" in UTF-32 or UTF-16: what feedparser's own sniffing reads right.
_SNIFFED_BY_FEEDPARSER = (
    *(mark for mark, _ in _MARKS[:6]),
    b"\0\0\0<\0\0\0?",
    b"<\0\0\0?\0\0\0",
    b"\0<\0?",
    b"<\0?\0",
)


def _unmarked_wide(data: bytes) -> tuple[bytes, list[str]] | None:
    """A UTF-16 or UTF-32 document without a BOM, as UTF-8; None for any other.

    feedparser sniffs one that starts with a BOM or `<?` itself (and that is left to it);
    one with white space first (`\\n<?xml`) or no declaration (`<rss`) it reads as UTF-8
    with NULs in it: "not well-formed (invalid token)".
    """
    if b"\0" not in data[:_WIDE_SAMPLE] or data.startswith(_SNIFFED_BY_FEEDPARSER):
        return None
    codec = _wide_codec(data[:_WIDE_SAMPLE])
    if codec is None:
        return None
    name = codec[:6].upper()
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        raise NotAFeed(
            f"{name} text without a byte-order mark that does not decode as {codec}: "
            f"{exc.reason} at byte {exc.start}"
        ) from None
    text = RE_XML_DECLARATION.sub("", text.lstrip(), count=1)
    document = (_UTF8_DECLARATION + text).encode("utf-8")
    return document, [f"{name} text without a byte-order mark: read as {codec}"]


def _wide_codec(sample: bytes) -> str | None:
    """The wide codec whose ASCII characters (one byte, the rest of the unit NUL) make up
    most of the sample: text of any other encoding has NULs at random, if at all."""
    for codec, size, at in _WIDE_CODECS:
        units = [sample[i : i + size] for i in range(0, len(sample) - size + 1, size)]
        ascii_units = sum(
            1 for unit in units if unit[at] and unit.count(0) == size - 1 and unit[at] < 0x80
        )
        if len(units) >= 4 and ascii_units * 2 > len(units):
            return codec
    return None


def _mostly_utf8(data: bytes) -> tuple[bytes, list[str]] | None:
    """A UTF-8 document with a few bytes that are not, decoded as UTF-8 with U+FFFD for
    those; None when the document is not declared UTF-8 (or undeclared) or is not mostly
    UTF-8, for feedparser's fallback to windows-1252.

    Which reading damages fewer characters wins: as UTF-8, each bad byte is lost; as
    windows-1252, each multi-byte character becomes two to four of mojibake. A tie (or
    a document with no multi-byte character, as Latin-1 text mislabelled UTF-8 is)
    stays windows-1252, which loses nothing.
    """
    body = data.removeprefix(codecs.BOM_UTF8)
    if body.startswith(_BOMS) or not _declared_utf8(body):
        return None
    escaped = body.decode("utf-8", "surrogateescape")  # each bad byte: one lone surrogate
    bad = len(body) - len(escaped.encode("utf-8", "ignore"))
    multibyte = len(escaped) - len(escaped.encode("ascii", "ignore")) - bad
    if multibyte <= bad:
        return None
    text = RE_XML_DECLARATION.sub("", body.decode("utf-8", "replace"), count=1)
    document = (_UTF8_DECLARATION + text).encode("utf-8")
    noun = "byte that is" if bad == 1 else "bytes that are"
    return document, [f"{bad} {noun} not UTF-8 replaced (the rest is UTF-8)"]


def _declared_utf8(data: bytes) -> bool:
    """Whether the XML declaration names UTF-8 (in any spelling Python knows) or nothing."""
    declared = RE_XML_PI_ENCODING.match(data)
    if not declared:
        return True
    try:
        return codecs.lookup(declared.group(1).decode("latin-1")).name == "utf-8"
    except (LookupError, ValueError):
        return False


def _refuse_slow_codecs(data: bytes) -> None:
    for value in _DECLARED_ENCODING.findall(_first_line(data)):
        name = value.replace(b"\0", b"").decode("latin-1")
        try:
            codec = codecs.lookup(name).name  # as bytes.decode(name) would find it
        except (LookupError, ValueError):
            continue
        if codec in _SLOW_CODECS:
            raise LookupError(f"{codec} is too slow to decode")


def _sniffed(data: bytes) -> str:
    """The encoding a BOM or the bytes of "<?" imply, as feedparser sniffs it; else UTF-8."""
    return next((encoding for mark, encoding in _MARKS if data.startswith(mark)), "utf-8")


def _first_line(data: bytes) -> bytes:
    if data[:4] == EBCDIC_MARKER:
        data = data.decode("cp037").encode()
    end = data.find(b"\n")
    return data if end < 0 else data[:end]


def _char_ref(match: re.Match[bytes]) -> bytes:
    hex_digits, decimal = match.groups()
    digits, base = (hex_digits, 16) if hex_digits else (decimal, 10)
    code = int(digits, base) if len(digits) <= 7 else -1
    if 0 <= code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF:
        return match.group()
    return b"&#xFFFD;"


class _Declared(Exception):
    pass


class _RootReached(Exception):
    pass


def _declares_entities(document: bytes) -> bool:
    """Whether the DTD before the root element declares an entity, in the document or as
    feedparser rewrites it for expat, or feedparser would give its fallback parser one."""
    _, rewritten, loose_entities = replace_doctype(document)
    return bool(loose_entities) or any(map(_expat_declares_entities, (document, rewritten)))


def _expat_declares_entities(document: bytes) -> bool:
    parser = xml.parsers.expat.ParserCreate(None, " ")  # as feedparser's SAX reader makes it
    parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_UNLESS_STANDALONE)
    parser.EntityDeclHandler = _entity_declared
    parser.StartElementHandler = _root_reached
    try:
        parser.Parse(document, True)
    except _Declared:
        return True
    except (_RootReached, xml.parsers.expat.ExpatError):
        return False
    return False


def _entity_declared(*_: object) -> None:
    raise _Declared


def _root_reached(*_: object) -> None:
    raise _RootReached
