"""The Pardot claim: a new participant takes over the Contact Pardot already made for them.

The seed matched a HealthPro row to a Pardot-created Contact (no PMI ID, owned by a Pardot
user) when the emails were equal after ``lower()`` **or** the phones were equal after
stripping ``-`` and spaces, **and** SQL Server's ``DIFFERENCE()`` was 4 on both FirstName
and LastName. It then updated every match, so two participants could claim one Contact and
one participant could claim two. Here each participant gets one :class:`ClaimDecision`:
exactly one candidate is a claim; several candidates, or a candidate two participants
match, is ``ambiguous`` and reported for a person to resolve, never guessed.

Phones are compared after :func:`~crm_sync.integrations.aou.transforms.normalise_phone`
(so ``(212) 555-0100`` and ``212-555-0100`` match, which the seed's rule missed) and emails
after :func:`~crm_sync.integrations.aou.transforms.normalise_email`; empty values never match.

SOUNDEX and DIFFERENCE follow SQL Server at database compatibility level 110 and later
(SQL Server 2012+), per Microsoft's SOUNDEX page and its compatibility notes:

* the code is the first letter, upper-cased, then up to three digits, zero-padded:
  B F P V = 1; C G J K Q S X Z = 2; D T = 3; L = 4; M N = 5; R = 6;
* A E I O U Y, H and W are not coded; letters side by side with the same digit count once,
  **including the first letter** (``Pfister`` = ``P236``; SQL Server before level 110 and some
  other engines give ``P123``; the NARA "American Soundex" rules also give ``P236``);
* a vowel (or Y) between two letters of the same digit makes both count (``Tymczak`` =
  ``T522``), an H or W does not (``Ashcraft`` = ``A261``; ``A226`` before level 110);
* ``DIFFERENCE`` is "the number of characters in the SOUNDEX values that are the same",
  position by position, 0-4 (``Green``/``Greene`` = 4, ``Anothers``/``Brothers`` = 2 in
  Microsoft's examples; ``Smith``/``Sweeney`` = 3 in Sybase's, SQL Server's ancestor).

Not covered by Microsoft's documentation, and not checked against a server here: coding
stops at the first character that is not a letter A-Z, so only the first word counts
(``O'Brien`` = ``O000``, ``Smith-Jones`` = ``S530``), which is how SQL Server is commonly
reported to behave. Two deliberate departures on input SQL Server codes oddly: a value that
does not start with a letter A-Z (empty, NULL, ``'123'``, a leading space) has the code
``''``, and ``difference`` with such a code is 0, so blank names never match. Letters
outside A-Z (accented ones) end the code; SQL Server's result there depends on the collation.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from crm_sync.integrations.aou.transforms import normalise_email, normalise_phone

__all__ = ["ClaimDecision", "Outcome", "difference", "match_pardot", "soundex"]

Outcome = Literal["claim", "ambiguous", "none"]

_CODES: Final = {
    **dict.fromkeys("BFPV", "1"),
    **dict.fromkeys("CGJKQSXZ", "2"),
    **dict.fromkeys("DT", "3"),
    "L": "4",
    **dict.fromkeys("MN", "5"),
    "R": "6",
}
_SEPARATORS: Final = frozenset("AEIOUY")
_TRANSPARENT: Final = frozenset("HW")


def soundex(value: str | None) -> str:
    """Return SQL Server's SOUNDEX code of ``value`` (level 110+), or ``''`` if it has no letter first.

    >>> soundex("Robert"), soundex("Tymczak"), soundex("Pfister"), soundex("Ashcraft")
    ('R163', 'T522', 'P236', 'A261')
    """
    if not value or not _is_letter(value[0]):
        return ""
    first = value[0].upper()
    digits: list[str] = []
    previous = _CODES.get(first, "")
    for char in value[1:]:
        letter = char.upper()
        if not _is_letter(letter):
            break
        if letter in _TRANSPARENT:
            continue
        if letter in _SEPARATORS:
            previous = ""
            continue
        code = _CODES[letter]
        if code != previous:
            digits.append(code)
            if len(digits) == 3:
                break
        previous = code
    return first + "".join(digits).ljust(3, "0")


def difference(left: str | None, right: str | None) -> int:
    """Return SQL Server's DIFFERENCE: how many of the 4 SOUNDEX positions agree (0 if either has no code).

    >>> difference("Green", "Greene"), difference("Anothers", "Brothers")
    (4, 2)
    """
    codes = soundex(left), soundex(right)
    if not all(codes):
        return 0
    return sum(a == b for a, b in zip(*codes, strict=True))


@dataclass(frozen=True)
class ClaimDecision:
    """What the claim decided for one new participant.

    Attributes:
        pmi_id: the participant.
        outcome: ``claim`` (take over ``contact_id``), ``ambiguous`` (report, change nothing)
            or ``none`` (create a new Contact).
        contact_id: the Contact to claim; only for ``claim``.
        candidates: every matching Contact id, sorted.
        reason: ``single_candidate``, ``several_candidates``, ``contested`` (another
            participant matches the same Contact) or ``no_candidate``.
    """

    pmi_id: str
    outcome: Outcome
    contact_id: str | None
    candidates: tuple[str, ...] = field(default=())
    reason: str = ""


def match_pardot(
    participants: Iterable[Mapping[str, Any]],
    pardot_contacts: Iterable[Mapping[str, Any]],
    *,
    owner_ids: Collection[str] | None = None,
) -> Iterator[ClaimDecision]:
    """Decide, for each new participant, whether it claims an existing Pardot Contact.

    Contacts are indexed by normalised email and phone, so the work is linear in the two
    inputs. Decisions come in the participants' order, once all of them have been seen
    (a Contact two participants match must make both ambiguous).

    Args:
        participants: new participants (no Salesforce Contact has their PMI ID), with
            ``HP_PMI_ID__c``, ``FirstName``, ``LastName``, ``Email``, ``Phone``.
        pardot_contacts: Contacts with ``Id``, ``FirstName``, ``LastName``, ``Email``,
            ``Phone``; one that already holds an ``HP_PMI_ID__c`` is skipped.
        owner_ids: when given, only Contacts with one of these ``OwnerId`` are candidates.
    """
    contacts: dict[str, tuple[str, str]] = {}
    by_email: dict[str, list[str]] = defaultdict(list)
    by_phone: dict[str, list[str]] = defaultdict(list)
    for contact in pardot_contacts:
        if contact.get("HP_PMI_ID__c") or (owner_ids is not None and contact.get("OwnerId") not in owner_ids):
            continue
        contact_id = str(contact["Id"])
        contacts[contact_id] = (soundex(_name(contact, "FirstName")), soundex(_name(contact, "LastName")))
        if email := normalise_email(contact.get("Email")):
            by_email[email].append(contact_id)
        if phone := normalise_phone(contact.get("Phone")):
            by_phone[phone].append(contact_id)

    matches: list[tuple[str, tuple[str, ...]]] = []
    matched_by: dict[str, int] = defaultdict(int)
    for participant in participants:
        first = soundex(_name(participant, "FirstName"))
        last = soundex(_name(participant, "LastName"))
        found: set[str] = set()
        if first and last:
            if email := normalise_email(participant.get("Email")):
                found.update(by_email.get(email, ()))
            if phone := normalise_phone(participant.get("Phone")):
                found.update(by_phone.get(phone, ()))
        # DIFFERENCE = 4 means all four positions agree, i.e. equal codes.
        candidates = tuple(sorted(cid for cid in found if contacts[cid] == (first, last)))
        matches.append((str(participant["HP_PMI_ID__c"]), candidates))
        for contact_id in candidates:
            matched_by[contact_id] += 1

    for pmi_id, candidates in matches:
        if not candidates:
            yield ClaimDecision(pmi_id, "none", None, (), "no_candidate")
        elif len(candidates) > 1:
            yield ClaimDecision(pmi_id, "ambiguous", None, candidates, "several_candidates")
        elif matched_by[candidates[0]] > 1:
            yield ClaimDecision(pmi_id, "ambiguous", None, candidates, "contested")
        else:
            yield ClaimDecision(pmi_id, "claim", candidates[0], candidates, "single_candidate")


def _is_letter(char: str) -> bool:
    return "A" <= char <= "Z" or "a" <= char <= "z"


def _name(row: Mapping[str, Any], key: str) -> str:
    return str(row.get(key) or "").strip(" ")
