"""The docs snippet loader the doc tests rely on."""
import pytest


def test_missing_snippet_is_named(exec_doc_snippet):
    with pytest.raises(LookupError, match="no snippet 'no-such-snippet'"):
        exec_doc_snippet('custom_heads.md', 'no-such-snippet')
