"""HTTP clients of the outside world: the Developer Console, Zoho Billing (with its call budget and
the cached plan catalog) and Zoho's OpenID provider. Imports core and the cross-cutting
modules; never the store.
"""
