"""The SMS gateway's shared package: models, domain logic and data access.

Shipped to Lambda as a layer; the handlers in functions/ are thin wrappers around it.
"""
