"""The Manage Subscription page: landing and identity, sessions, the overview and its actions,
Sign in with Zoho; templates/ and static/ beside it. Imports web.appkeys and every layer
below.
"""
