"""Caps on the shape of an XML request, checked before any SOAP code walks the tree.

libxml2 parses even a hostile document in linear time, but what walks it afterwards
need not: Spyne visits every attribute of the operation element and lxml looks each one
up again from the start of the element's list, O(N²) in C with the GIL held (110,000
attributes, under the 1 MiB body limit, froze the whole process for ~58 s). So the
parsed tree is measured first, in one streaming pass (``etree.iterwalk``: no per-node
lookups, and it stops at the first cap exceeded, so the pass itself costs at most the
caps' worth of nodes), and a document over any cap is refused as the client's error.

No operation of this service needs more than a handful of attributes, a few dozen
elements or namespaces, or ten levels; the defaults leave room for SOAP headers
(WS-Security, WS-Addressing) and are those of Apache CXF where CXF has one.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree


@dataclass(frozen=True)
class XmlLimits:
    max_attributes: int = 500  # per element (CXF's maxAttributeCount)
    max_elements: int = 10_000  # in the whole document
    max_depth: int = 100  # levels of nesting (CXF's innerElementLevelThreshold)
    max_namespaces: int = 100  # namespace declarations in the whole document

    @classmethod
    def from_settings(cls, settings) -> XmlLimits:
        return cls(settings.xml_max_attributes, settings.xml_max_elements,
                   settings.xml_max_depth, settings.xml_max_namespaces)


def over_limit(root, limits: XmlLimits) -> str | None:
    """Why the tree under ``root`` is refused, or ``None`` if it is within the limits."""
    elements = depth = namespaces = 0
    for event, node in etree.iterwalk(root, events=("start", "end", "start-ns")):
        if event == "start":
            elements += 1
            depth += 1
            if elements > limits.max_elements:
                return f"more than {limits.max_elements} elements"
            if depth > limits.max_depth:
                return f"elements nested more than {limits.max_depth} deep"
            # len() counts the element's attribute list once, in C: no lookups by name.
            if len(node.attrib) > limits.max_attributes:
                return f"more than {limits.max_attributes} attributes on one element"
        elif event == "end":
            depth -= 1
        else:
            namespaces += 1
            if namespaces > limits.max_namespaces:
                return f"more than {limits.max_namespaces} namespace declarations"
    return None
