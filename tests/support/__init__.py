"""What the tests share, so that no test file rewrites it.

- ``server``: a real ``soapservice serve`` subprocess (``Server``, ``server_fixture``
  for fixtures that start one, which marks their tests ``server``), the command line
  (``soapservice``) and ``free_port``;
- ``receiver``: a webhook receiver on 127.0.0.1 that records every request;
- ``doubles``: in-process stand-ins for the reactor's collaborators (a scripted sender,
  store runners that run now or when the test says, an inline thread pool, a reactor
  whose ``callFromThread`` runs at once, a settable time source).
"""
