"""Which characters XML 1.0 can carry (control characters, lone surrogates and U+FFFE/
U+FFFF cannot, even escaped): the core refuses them in parameters, and the SOAP and
legacy writers replace them in stored text (a receiver's error in ``lastError``, say)
so that no stored value can make an answer unreadable."""

import re

NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_safe(text: str) -> str:
    """``text`` with every character XML cannot carry replaced by U+FFFD."""
    return NOT_XML.sub("\ufffd", text)
