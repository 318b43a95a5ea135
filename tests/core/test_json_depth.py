"""How deep a provider's JSON may nest: the decoded value's walk, and the text's shortcut."""

from __future__ import annotations

import json

from posbridge.providers.json_depth import MAX_DEPTH, too_deep


def nested(levels: int) -> str:
    return '{"a":' * (levels - 1) + "[1]" + "}" * (levels - 1)


def test_nesting_up_to_the_limit_passes_and_one_level_more_is_refused() -> None:
    for text in (nested(MAX_DEPTH), nested(MAX_DEPTH).encode()):
        assert not too_deep(json.loads(text))
        assert not too_deep(json.loads(text), text=text)
    for text in (nested(MAX_DEPTH + 1), nested(MAX_DEPTH + 1).encode()):
        assert too_deep(json.loads(text))
        assert too_deep(json.loads(text), text=text)


def test_brackets_inside_strings_only_make_the_text_shortcut_walk_the_value() -> None:
    text = json.dumps({"note": "[" * 100, "data": {"list": [1, 2]}})
    assert not too_deep(json.loads(text), text=text)
    assert not too_deep(json.loads(text), text=text.encode())
