"""The router's tables are the features' own routes put together, each name claimed once."""

from __future__ import annotations

import pytest

from bot.dialog import buttons, router


def test_each_feature_s_routes_reach_the_router():
    for feature in router.FEATURES:
        for name, handler in getattr(feature, "COMMANDS", {}).items():
            assert router.COMMANDS[name] is handler
        for kind, handler in getattr(feature, "BUTTONS", {}).items():
            assert router.BUTTONS[kind] is handler
        for verb, action in getattr(feature, "DEAL_VERBS", {}).items():
            assert router.DEAL_VERBS[verb] is action
    assert set(router.BUTTONS) == set(buttons.KINDS.values()), "a button kind nobody handles"


def test_a_name_claimed_by_two_features_is_refused():
    with pytest.raises(ValueError, match="declared twice: \\['help'\\]"):
        router.compose([{"help": print, "new": print}, {"help": print}])
    assert router.compose([{"a": 1}, {"b": 2}]) == {"a": 1, "b": 2}
