"""The room: a facilitator's live view of a workshop's learners (`lab room`).

store (the room's SQLite state and what the page shows), service (the Flask service learners
push to and the facilitator's page reads), client (a learner's side: join, then every verdict
queued on disk and sent in the background). The service and the client share nothing but
the HTTP contract written in service's docstring.
"""
