"""Reading multipart bodies (the OpenAI-compatible edits route, and the request recorder)."""

import email.parser
import email.policy
from typing import Any


def multipart_parse(content_type: str, body: bytes) -> tuple[dict[str, Any], list[str]]:
    """A multipart body's text fields and the field names of its files."""
    header = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(header + body)
    fields: dict[str, Any] = {}
    files: list[str] = []
    for part in message.iter_parts() if message.is_multipart() else []:
        name = part.get_param("name", header="content-disposition")
        if part.get_filename() is not None:
            files.append(name)
        elif name:
            fields[name] = part.get_content().strip() if part.get_content_maintype() == "text" else part.get_payload()
    return fields, files
