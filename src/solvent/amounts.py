"""The boundary: amounts and ids are checked here, before any command runs.

Money is an integer number of an asset's minor units (satoshi, won). Users
may give an amount as a ``str`` or ``Decimal`` in the asset's units, or an
``int`` of whole units. Parsing is exact: more decimals than the asset has
is an error, never a rounding. A ``float`` is a :class:`~solvent.FloatAmount`
(a ``TypeError``).
"""

from __future__ import annotations

import re
from decimal import Context, Decimal, Inexact, InvalidOperation, Rounded
from typing import Final

from solvent.core.codes import INT64_MAX
from solvent.errors import FloatAmount, InvalidAmount, InvalidArgument, InvalidId

MAX_ID_CHARS: Final = 128
MAX_DECIMALS: Final = 18
MAX_AMOUNT_CHARS: Final = 64
MAX_SHIFT_DIGITS: Final = 40  # from_minor's fast path: ints of up to 40 digits
PPM: Final = 1_000_000  # a ratio's unit in parts per million

_AMOUNT_RE: Final = re.compile(r"([0-9]+)(?:\.([0-9]+))?")

AmountLike = str | Decimal | int


def shown_value(value: object) -> str:
    """``repr(value)`` for an error message, clipped: a message stays short, whatever
    the input. An int too long for ``repr`` (over 4,300 digits: a ``ValueError``) is
    named by its size, and so is a value whose ``repr`` raises."""
    if isinstance(value, int) and value.bit_length() > 8 * MAX_AMOUNT_CHARS:
        return f"<an int of {value.bit_length()} bits>"
    try:
        shown = repr(value)
    except Exception:  # a caller's object: its repr is not ours to trust
        return f"<a {type(value).__name__} whose repr() raises>"
    if len(shown) > 2 * MAX_AMOUNT_CHARS:
        shown = shown[: 2 * MAX_AMOUNT_CHARS] + "..."
    return shown


def to_minor(
    value: object, decimals: int, *, what: str = "amount", asset: str = "", account: str = ""
) -> int:
    """Parse ``value`` into a positive int64 number of minor units.

    >>> to_minor("1.25", 8)
    125000000
    >>> to_minor(2, 0)
    2
    """
    minor: int
    if type(value) is str and len(value) <= MAX_AMOUNT_CHARS:  # the common case, checked once
        m = _AMOUNT_RE.fullmatch(value)
        if m is not None:
            whole, frac = m.group(1), m.group(2)
            if frac is None:
                minor = int(whole) * 10**decimals
            elif len(frac) <= decimals:
                minor = int(whole) * 10**decimals + int(frac) * 10 ** (decimals - len(frac))
            else:
                minor = -1  # too many decimals: the full path below says so
            if 0 < minor <= INT64_MAX:
                return minor
    elif type(value) is int and 0 < value <= INT64_MAX // 10**decimals:  # whole units
        minor = value * 10**decimals
        return minor
    # every refusal, and the other types: the message names the value, clipped
    shown = shown_value(value)
    where = (f" of {asset}" if asset else "") + (f" for {account!r}" if account else "")
    label = f"{what} {shown}{where}"
    if isinstance(value, float):
        raise FloatAmount(f"{label}: floats are not accepted for money; pass a str or Decimal",
                          asset=asset)
    if isinstance(value, bool):
        raise InvalidAmount(f"{label}: a bool is not an amount", asset=asset)
    if isinstance(value, int):
        if value > INT64_MAX // 10**decimals:
            raise InvalidAmount(f"{label} exceeds the int64 limit of minor units", asset=asset)
        minor = value * pow(10, decimals)
    elif isinstance(value, str):
        if len(value) > MAX_AMOUNT_CHARS:
            raise InvalidAmount(f"{what} of {len(value)} characters{where} is too long",
                                asset=asset)
        m = _AMOUNT_RE.fullmatch(value)
        if m is None:
            raise InvalidAmount(
                f"{label} is not a plain positive decimal such as '1.25'", asset=asset
            )
        whole, frac = m.group(1), m.group(2) or ""
        if len(frac) > decimals:
            raise InvalidAmount(
                f"{label} has {len(frac)} decimals; {asset or 'the asset'} has {decimals}",
                asset=asset,
            )
        minor = int(whole) * 10**decimals + int(frac.ljust(decimals, "0") or "0")
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidAmount(f"{label} is not finite", asset=asset)
        sign, digits, exponent = value.as_tuple()
        assert isinstance(exponent, int)
        if len(digits) > MAX_AMOUNT_CHARS:
            raise InvalidAmount(f"{label} has too many digits", asset=asset)
        coefficient = int("".join(map(str, digits)) or "0")
        shift = exponent + decimals
        if shift >= 0:
            if shift > MAX_AMOUNT_CHARS:
                raise InvalidAmount(f"{label} exceeds the int64 limit", asset=asset)
            minor = coefficient * pow(10, shift)
        else:  # exactly as for str: more decimal places than the asset has is an error
            raise InvalidAmount(
                f"{label} has {-exponent} decimals; {asset or 'the asset'} has {decimals}",
                asset=asset,
            )
        if sign and minor:
            minor = -minor
    else:
        raise InvalidAmount(
            f"{label}: expected str, Decimal or int, got {type(value).__name__}", asset=asset
        )
    if minor <= 0:
        raise InvalidAmount(f"{label} must be positive", asset=asset)
    if minor > INT64_MAX:
        raise InvalidAmount(f"{label} exceeds the int64 limit of minor units", asset=asset)
    return minor


# Shifting the decimal point of an int of up to 40 digits is exact in this context (and
# would raise rather than round): the caller's own decimal context plays no part.
_SHIFT_CONTEXT: Final = Context(prec=MAX_SHIFT_DIGITS, Emin=-MAX_SHIFT_DIGITS,
                                Emax=MAX_SHIFT_DIGITS, traps=[Inexact, Rounded])
_SHIFT_MAX: Final = 10**MAX_SHIFT_DIGITS - 1


def from_minor(minor: int, decimals: int) -> Decimal:
    """The exact Decimal value of ``minor`` units at ``decimals`` places (exponent
    ``-decimals``: ``from_minor(100_000_000, 8)`` is ``Decimal('1.00000000')``)."""
    if not decimals:
        return Decimal(minor)
    if -_SHIFT_MAX <= minor <= _SHIFT_MAX:  # every int64 amount and 128-bit sum
        return Decimal(minor).scaleb(-decimals, _SHIFT_CONTEXT)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**decimals)
    return Decimal(f"{sign}{whole}.{frac:0{decimals}d}")


def format_minor(minor: int, decimals: int) -> str:
    """``minor`` as a plain decimal string with exactly ``decimals`` places, e.g. '1.25000000'."""
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**decimals)
    return f"{sign}{whole:,}" + (f".{frac:0{decimals}d}" if decimals else "")


def to_ppm(value: object, what: str, limit_ppm: int) -> int:
    """Parse a ratio (a fee rate, a band, a coverage) given as a ``str`` or ``Decimal``
    into whole parts per million, 0..``limit_ppm``. Exact: finer than 1 ppm is an
    error, never a rounding, whatever the decimal context.

    >>> to_ppm("0.0005", "maker_fee", 10_000)
    500
    """
    if isinstance(value, float):
        raise FloatAmount(f"{what}: floats are not accepted; pass a str such as '0.001'")
    if not isinstance(value, (str, Decimal)):
        raise InvalidArgument(f"{what} must be a str or Decimal, got {type(value).__name__}")
    shown = shown_value(value)
    refused = InvalidArgument(
        f"{what} {shown} must be 0..{Decimal(limit_ppm) / PPM} with at most 6 decimals")
    if isinstance(value, str) and len(value) > MAX_AMOUNT_CHARS:
        raise refused
    try:
        ratio = Decimal(value)
    except InvalidOperation as exc:
        raise InvalidArgument(f"{what} {shown} is not a number") from exc
    if not ratio.is_finite():  # NaN and sNaN too, before any arithmetic signals on them
        raise refused
    sign, digits, exponent = ratio.as_tuple()
    assert isinstance(exponent, int)
    coefficient = int("".join(map(str, digits)) or "0")
    if coefficient == 0:
        return 0
    shift = exponent + 6  # ppm = coefficient * 10**shift, in ints: no context applies
    if sign or shift > len(str(limit_ppm)) or -shift > len(digits):
        raise refused  # negative, far past the limit, or under 1 ppm
    ppm: int
    if shift >= 0:
        ppm = coefficient * pow(10, shift)
    else:
        ppm, rest = divmod(coefficient, pow(10, -shift))
        if rest:
            raise refused
    if ppm > limit_ppm:
        raise refused
    return ppm


_SPACE_RE = re.compile(r"\s")


def check_id(value: object, what: str) -> str:
    """Return ``value`` if it is a valid id: a str of 1..128 printable, non-space characters."""
    if not isinstance(value, str):
        raise InvalidId(f"{what} must be a str, got {type(value).__name__}", what=what)
    if not value:
        raise InvalidId(f"{what} must not be empty", what=what)
    if len(value) > MAX_ID_CHARS:
        raise InvalidId(
            f"{what} of {len(value)} characters exceeds the limit of {MAX_ID_CHARS}", what=what
        )
    if not value.isprintable() or _SPACE_RE.search(value):
        raise InvalidId(f"{what} {value!r} must be printable with no white space", what=what)
    return value


def check_ref(value: object, what: str = "ref") -> str:
    """A ref is an id, or ``""`` for commands that carry none."""
    if value == "":
        return ""
    return check_id(value, what)


def check_text(value: object, what: str, limit: int = 1024) -> str:
    """Free text (memo, reason): a str of at most ``limit`` characters that UTF-8 can
    encode (no lone surrogates)."""
    if not isinstance(value, str):
        raise InvalidId(f"{what} must be a str, got {type(value).__name__}", what=what)
    if len(value) > limit:
        raise InvalidId(f"{what} of {len(value)} characters exceeds {limit}", what=what)
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: the journal (UTF-8) cannot hold it
            raise InvalidId(f"{what} is not encodable as UTF-8", what=what) from None
    return value
