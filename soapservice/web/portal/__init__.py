"""``/portal``: the customer portal (SPEC §7): sign-in, the account's webhooks with their
health, a webhook's charts and delivery log, and its actions. See docs/portal.rst.

``session.py``: the session and anti-forgery rules (pure); ``handler.py``: what each
request does (in a worker thread, through the API's core); ``views.py``: the HTML;
``resource.py``: the Twisted side.
"""

from soapservice.web.portal.resource import Portal

__all__ = ["Portal"]
