"""The pages' shared helpers: what a template shows is text unless marked as HTML."""

import pytest

from soapservice.web.pages import Markup, render_text


def test_values_are_escaped_unless_marked_as_markup():
    page = render_text('<p title="$title">$body</p>$extra',
                       title='"><script>x</script>', body="a & b <i>",
                       extra=Markup("<hr>")).decode()
    assert page == ('<p title="&quot;&gt;&lt;script&gt;x&lt;/script&gt;">a &amp; b '
                    '&lt;i&gt;</p><hr>')


def test_a_missing_value_is_an_error_not_an_empty_hole():
    with pytest.raises(KeyError):
        render_text("<p>$missing</p>")
