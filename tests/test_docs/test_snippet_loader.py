"""The docs snippet loader the doc tests rely on."""
import pytest
from conftest import read_doc_snippet


def test_missing_snippet_is_named():
    with pytest.raises(LookupError, match="no snippet 'no-such-snippet'"):
        read_doc_snippet('custom_heads.md', 'no-such-snippet')
