"""Which email addresses a directory may give a user, so that no address passes for another's.

Addresses are compared by NFKC + casefold. An address that NFKC would change (full-width
letters, ligatures, mathematical letters), that holds invisible or control characters
(zero-width joiners, bidirectional overrides), or whose local part or a domain label mixes
scripts (a Cyrillic `\u0430` among Latin letters) is refused: each is a look-alike of some other
address by construction. So for every address the planner accepts, NFKC changes nothing and the
stored key, its casefold, is the NFKC + casefold comparison.
"""

from __future__ import annotations

import re
import unicodedata

from confusable_homoglyphs import categories

MAX_EMAIL = 320  # RFC 5321: 64 + 1 + 255; the users.email column
# Scripts that one label may mix, as Unicode's "highly restrictive" profile allows (UTS #39).
_MIXES = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)
_NEUTRAL = frozenset({"COMMON", "INHERITED"})
# Control, format (zero-width, bidi), surrogate, private use, unassigned; line/paragraph separators.
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_LABELS = re.compile(r"[@.]")
_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def email_key(email: str) -> str:
    """How two addresses are compared: NFKC, then casefold."""
    return unicodedata.normalize("NFKC", email).casefold()


def email_problem(email: str) -> str | None:
    """Why this address must not be given to a user, or None."""
    if len(email) > MAX_EMAIL:
        return f"email is longer than {MAX_EMAIL} characters"
    if email.isascii():  # NFKC keeps ASCII as it is, and ASCII letters are all Latin
        return None if _ASCII_CONTROL.search(email) is None else _invisible(email)
    if any(unicodedata.category(ch) in _INVISIBLE for ch in email):
        return _invisible(email)
    if unicodedata.normalize("NFKC", email) != email:
        return (
            f"email {email!r} holds look-alike characters (such as full-width letters or ligatures) "
            f"that Unicode normalizes to {unicodedata.normalize('NFKC', email)!r}"
        )
    for label in _LABELS.split(email):
        scripts = set(categories.unique_aliases(label)) - _NEUTRAL
        if len(scripts) > 1 and not any(scripts <= allowed for allowed in _MIXES):
            return (
                f"email {email!r} mixes scripts ({', '.join(sorted(scripts))}) in {label!r}, "
                "which makes it look like another address"
            )
    return None


def _invisible(email: str) -> str:
    return f"email {email!r} holds invisible or control characters"
