"""Schemathesis hooks for orcaops (loaded through SCHEMATHESIS_HOOKS by run.sh).

Watches are left out of the fuzzing: a watch answers a stream of JSON lines (none at all
when nothing happens before its timeout), which schemathesis would read as one JSON
document. tests/api.rs checks watches end to end instead: events, bookmarks, 410,
resume and selectors.
"""

import schemathesis

TRUE = {"true", "1", "t", "T", "True", "TRUE"}


@schemathesis.hook
def filter_query(ctx, query):
    return str((query or {}).get("watch", "")) not in TRUE


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    # The coverage phase does not go through filter_query: its watch cases become lists.
    query = dict(case.query or {})
    if str(query.get("watch", "")) in TRUE:
        del query["watch"]
        case.query = query
