"""Every SQL statement: the SQLite store and its migrations, the webhook pipeline's writes, the
correlation tables, the outbox, audit log, checkouts, read models, nonces and OIDC flows.
Imports core and the cross-cutting modules; never the clients.
"""
