"""Every SQL statement: the SQLite store and its migrations, the pipeline's loads and writes, the
identity tables, the outbox, audit log, checkouts, read models, nonces and OIDC flows.
Imports core and the cross-cutting modules; never the clients.
"""
