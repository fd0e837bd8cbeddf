"""The HTTP edge: the application factory, its typed keys, middlewares, health checks and the
billing webhook endpoint. Imports manage (its routes) and every layer below.
"""
