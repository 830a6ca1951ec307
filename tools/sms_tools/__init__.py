"""Operator and developer tools: the admin CLI and the OpenAPI generator. They import the
sms_gateway package but never ship in the Lambda layer."""
