"""How the store reaches a database: SQLite (``sqlite``) or PostgreSQL (``postgres``).

Everything above this package writes job functions ``fn(tx)`` against ``tx.Tx`` and hands them to
a backend; nothing above it knows which database runs them.
"""
