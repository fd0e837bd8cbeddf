"""Subscription broker: Zoho Billing webhooks in, Zoho Developer Console Subscription calls out."""
