"""The outbox worker: claims deliveries, calls the platform, retries, records attempts; in the
server process. Imports store, clients, core and the cross-cutting modules.
"""
