"""The SMS gateway's shared package, shipped to Lambda as a layer (functions/ hold thin handlers).

domain/ (models and rules, no I/O) · logic/ (what happens, in order) · store/ (the only AWS
calls) · providers/ (one folder per SMS provider) · api/ (HTTP routes). Imports run one way:
api → logic → domain, store, providers. docs/architecture.md has the map.
"""
