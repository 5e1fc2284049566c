"""Data locality rules: which places a task's input items live at."""

from __future__ import annotations

import pytest

from wps_gateway.config import ConfigError, load_settings
from wps_gateway.locality import LocalityRuleError, parse_rules, places_for


def test_the_longest_prefix_wins_and_places_are_listed_once_in_item_order():
    rules = parse_rules("file:///eodata/ storage=main, file:///eodata/fast/ storage=ssd,https://s3.b/ site=b")
    items = ["file:///eodata/fast/x.tif", "https://s3.b/y.tif", "file:///eodata/z.tif", "file:///eodata/fast/w.tif",
             "http://unknown/q.tif"]
    assert places_for(items, rules) == ["storage=ssd", "site=b", "storage=main"]
    assert places_for([1, 2], rules) == []


def test_a_rule_without_a_place_is_refused_at_start_up():
    with pytest.raises(LocalityRuleError):
        parse_rules("file:///eodata/")
    with pytest.raises(ConfigError):
        load_settings(cfg_files=[], environ={"GATEWAY_DATA_LOCALITY": "file:///eodata/"})
