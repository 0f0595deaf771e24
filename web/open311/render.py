"""The spec's two formats: JSON (lists of objects) and XML (a root element of items,
lists as a parent of repeated children)."""

from __future__ import annotations

import json
import re
from typing import Any
from xml.etree import ElementTree as ET

from flask import Response

# A list field's element and the element of each of its items.
LIST_ITEMS = {
    "attributes": "attribute",
    "values": "value",
    "endpoints": "endpoint",
    "formats": "format",
}


# What XML 1.0 cannot hold (control characters but tab and line breaks, surrogates,
# U+FFFE and U+FFFF): one in a case's text would make the whole document unreadable.
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return NOT_XML.sub("", str(value))


def _fill(parent: ET.Element, name: str, value: Any) -> None:
    node = ET.SubElement(parent, name)
    if isinstance(value, dict):
        for key, inner in value.items():
            _fill(node, key, inner)
    elif isinstance(value, list | tuple):
        item = LIST_ITEMS.get(name, "item")
        for inner in value:
            _fill(node, item, inner)
    else:
        node.text = _text(value)


def xml_document(root: str, item: str | None, data: Any) -> bytes:
    """``data`` under ``root``: each of a list as ``item``, or a mapping's fields."""
    top = ET.Element(root)
    if item is None:
        for key, value in data.items():
            _fill(top, key, value)
    else:
        for entry in data:
            _fill(top, item, entry)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(
        top, encoding="utf-8", xml_declaration=False
    )


def answer(fmt: str, root: str, item: str | None, data: Any, status: int = 200) -> Response:
    if fmt == "xml":
        body = xml_document(root, item, data)
        return Response(body, status, content_type="text/xml; charset=utf-8")
    return Response(
        json.dumps(data, ensure_ascii=False), status, content_type="application/json; charset=utf-8"
    )


def errors(fmt: str, status: int, description: str) -> Response:
    """The spec's error document: a list of code and description."""
    return answer(fmt, "errors", "error", [{"code": status, "description": description}], status)
