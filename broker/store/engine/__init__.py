"""How the store reaches a database: SQLite (``sqlite``) or PostgreSQL (``postgres``).

Everything above this package writes job functions ``fn(tx)`` against ``tx.Tx`` and hands them to
a backend, which runs them through the one write loop both share (``writer``); nothing above it
knows which database runs them. Nothing here knows a table: the schema's migrations are handed in
(``broker.store.opening``).
"""
