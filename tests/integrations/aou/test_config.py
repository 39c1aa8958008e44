"""AouConfig: the seed's defaults and strict validation."""

from __future__ import annotations

import dataclasses

import pytest

from crm_sync.exceptions import ConfigurationError
from crm_sync.integrations.aou.config import AouConfig


def test_defaults_are_the_seeds():
    config = AouConfig()
    assert config.account_id == "0010a00001Qa6gPAAR"
    assert config.paired_organization == "COLUMBIA_COLUMBIA"
    assert config.readiness_threshold == 100
    assert (config.contact_object, config.external_id, config.journey_object) == (
        "Contact",
        "HP_PMI_ID__c",
        "Opportunity",
    )
    assert config.pardot_owner_ids == (config.pardot_user_1, config.pardot_user_2)
    assert config.managed_owner_ids == (
        config.owner_id,
        config.pardot_user_1,
        config.pardot_user_2,
        config.sovereign_user,
    )
    assert len(set(config.managed_owner_ids)) == 4
    assert all(owner.startswith("005") for owner in config.managed_owner_ids)


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        AouConfig().account_id = "001000000000001AAA"  # type: ignore[misc]


def test_from_mapping_overrides_and_keeps_defaults():
    config = AouConfig.from_mapping(
        {
            "paired_organization": "WEILL_CORNELL",
            "readiness_threshold": 5,
            "owner_id": "005000000000001",
            "account_id": None,
        }
    )
    assert config.paired_organization == "WEILL_CORNELL"
    assert config.readiness_threshold == 5
    assert config.owner_id == "005000000000001"
    assert config.account_id == AouConfig().account_id


def test_from_mapping_rejects_unknown_keys_by_name():
    with pytest.raises(ConfigurationError, match=r"unknown AOU setting\(s\) 'acount_id', 'extra'"):
        AouConfig.from_mapping({"acount_id": "0010a00001Qa6gPAAR", "extra": 1})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"readiness_threshold": "100"}, "'readiness_threshold' must be int"),
        ({"readiness_threshold": True}, "'readiness_threshold' must be int"),
        ({"readiness_threshold": -1}, "must be >= 0"),
        ({"paired_organization": 7}, "'paired_organization' must be str"),
        ({"paired_organization": "  "}, "must not be empty"),
        (
            {"account_id": "0050a00001Qa6gPAAR"},
            "'account_id' must be a 15- or 18-character Salesforce id starting 001",
        ),
        ({"account_id": "001short"}, "'account_id'"),
        ({"pardot_user_2": "0010a00001Qa6gPAAR"}, "'pardot_user_2'.*starting 005"),
        ({"external_id": "HP PMI ID"}, "'external_id' must be a Salesforce API name"),
    ],
)
def test_from_mapping_rejects_bad_values(values, message):
    with pytest.raises(ConfigurationError, match=message):
        AouConfig.from_mapping(values)
