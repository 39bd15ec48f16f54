"""Schemathesis hooks for orcaops (loaded through SCHEMATHESIS_HOOKS by run.sh).

A watch streams until its timeout or the client goes, so every generated watch gets
timeoutSeconds=1: the stream, its events and its end are still checked, and the run
does not hang on it.
"""

import schemathesis

TRUE = {"true", "1", "t", "True", "TRUE"}


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    query = dict(case.query or {})
    if str(query.get("watch", "")) in TRUE:
        query["timeoutSeconds"] = 1
        case.query = query
