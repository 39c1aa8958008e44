"""XML documents of the Mobile Commons API: ``<response success="true|false">`` envelopes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from xml.etree import ElementTree as ET

from sandbox.mobile_commons.store import (
    ADDRESS_FIELDS,
    Campaign,
    McError,
    Profile,
    Subscription,
    format_time,
)


def _text(parent: ET.Element, tag: str, value: Any) -> ET.Element:
    child = ET.SubElement(parent, tag)
    child.text = "" if value is None else str(value)
    return child


def document(success: bool, children: Iterable[ET.Element] = ()) -> str:
    """A complete response document."""
    root = ET.Element("response", success="true" if success else "false")
    root.extend(children)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


def error_document(error: McError) -> str:
    """``<response success="false"><error id="5" message="Invalid phone number"/></response>``."""
    return document(False, [ET.Element("error", id=str(error.error_id), message=error.message)])


def profile_element(profile: Profile, *, subscriptions: bool = True, custom: bool = True) -> ET.Element:
    """One ``<profile id>`` as ``GET profile`` returns it."""
    element = ET.Element("profile", id=str(profile.id))
    for name in ("first_name", "last_name"):
        _text(element, name, profile.fields.get(name))
    _text(element, "phone_number", profile.phone_number)
    _text(element, "email", profile.fields.get("email"))
    _text(element, "status", profile.status)
    _text(element, "created_at", format_time(profile.created_at))
    _text(element, "updated_at", format_time(profile.updated_at))
    _text(element, "opted_out_at", format_time(profile.opted_out_at))
    source = ET.SubElement(element, "source", type="API", name=profile.source_name)
    source.text = ""
    address = ET.SubElement(element, "address")
    for name in ADDRESS_FIELDS:
        _text(address, name, profile.fields.get(name))
    if custom:
        columns = ET.SubElement(element, "custom_columns")
        for name, value in sorted(profile.custom.items()):
            column = ET.SubElement(columns, "custom_column", name=name)
            column.text = value
    if subscriptions:
        subs = ET.SubElement(element, "subscriptions")
        for sub in profile.subscriptions:
            item = ET.SubElement(
                subs,
                "subscription",
                campaign_id=str(sub.campaign_id),
                opt_in_path_id=str(sub.opt_in_path_id or ""),
                status=sub.status,
                opt_in_source=sub.opt_in_source,
                activated_at=format_time(sub.activated_at),
                opted_out_at=format_time(sub.opted_out_at),
            )
            item.text = ""
    return element


def profiles_element(profiles: list[Profile], page: int, *, subscriptions: bool, custom: bool) -> ET.Element:
    """``<profiles num page>``; a page with ``num="0"`` ends the listing."""
    element = ET.Element("profiles", num=str(len(profiles)), page=str(page))
    element.extend(profile_element(p, subscriptions=subscriptions, custom=custom) for p in profiles)
    return element


def campaigns_element(campaigns: list[Campaign], *, with_paths: bool) -> ET.Element:
    """``<campaigns><campaign id active><name/><opt_in_paths>...``."""
    element = ET.Element("campaigns")
    for campaign in campaigns:
        item = ET.SubElement(element, "campaign", id=str(campaign.id), active=str(campaign.active).lower())
        _text(item, "name", campaign.name)
        if with_paths:
            paths = ET.SubElement(item, "opt_in_paths")
            for path_id, name in sorted(campaign.paths.items()):
                path = ET.SubElement(paths, "opt_in_path", id=str(path_id), active="true")
                _text(path, "name", name)
    return element


def subscriptions_element(rows: list[tuple[str, Subscription]], page: int) -> ET.Element:
    """``<subscriptions num page><sub><id/><phone_number/><activated_at/><opted_out_at/></sub>``."""
    element = ET.Element("subscriptions", num=str(len(rows)), page=str(page))
    for phone, sub in rows:
        item = ET.SubElement(element, "sub")
        _text(item, "id", sub.id)
        _text(item, "phone_number", phone)
        _text(item, "opt_in_path_id", sub.opt_in_path_id or "")
        _text(item, "activated_at", format_time(sub.activated_at))
        _text(item, "opted_out_at", format_time(sub.opted_out_at))
    return element


def groups_element(groups: list[dict[str, Any]]) -> ET.Element:
    """``<groups><group id type="UploadedGroup"><name/></group>``."""
    element = ET.Element("groups")
    for group in groups:
        item = ET.SubElement(element, "group", id=str(group["id"]), type="UploadedGroup")
        _text(item, "name", group["name"])
    return element
