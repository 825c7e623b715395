"""The Spyne layer: types and the four operations as a document/literal service."""
