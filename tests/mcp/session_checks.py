"""What both MCP session scripts use to report and check: a log line, a tool result's
text, and an assertion that shows the result it was about."""

import sys


def log(message):
    print(f"[agent] {message}", file=sys.stderr, flush=True)


def text_of(result):
    return "\n".join(c.text for c in result.content if getattr(c, "type", "") == "text")


def expect(condition, message, result=None):
    if not condition:
        detail = ""
        if result is not None:
            detail = f"\n--- is_error={result.is_error} text:\n{text_of(result)}\n--- structured: {result.structured_content}"
        raise AssertionError(message + detail)
