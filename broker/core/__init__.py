"""Pure decisions and data: billing events, mapping to platform calls, the status policy, prices,
forms, signed links. No aiohttp, no SQL, no I/O. Imports only the cross-cutting modules
(config, errors, ...).
"""
