r"""Log lines that cannot be forged: host names, flavor extra specs, store contents and error
texts end up in our log messages, and a newline or terminal escape among them could fake a
second log line or hide one.  :class:`OneLineFilter` escapes every non-printable character of
a record's final message (a newline becomes the two characters ``\n``, ESC ``\x1b``, U+2028
``\u2028``), so one logging call is one physical line.  No Nova imports: the agent uses it too."""

from __future__ import annotations

import logging


def one_line(text: str) -> str:
    """``text`` with every non-printable character (control, format, line/paragraph separator)
    replaced by its Python escape; printable text (any script) is unchanged."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


class OneLineFilter(logging.Filter):
    """Escapes the formatted message of every record of the logger it is attached to."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        safe = one_line(message)
        if safe != message or record.args:
            record.msg, record.args = safe, None
        return True


def install(logger: logging.Logger) -> logging.Logger:
    """Attach one :class:`OneLineFilter` to ``logger`` (idempotent); returns the logger."""
    if not any(isinstance(f, OneLineFilter) for f in logger.filters):
        logger.addFilter(OneLineFilter())
    return logger
