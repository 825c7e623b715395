"""twisted.web resources: the tree that ``soapservice serve`` answers with."""
