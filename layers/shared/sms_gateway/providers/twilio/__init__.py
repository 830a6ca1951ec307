"""Twilio: the Messages API client, X-Twilio-Signature, subaccount credentials, the status
callback's form and the mapping of Twilio's statuses and error codes to ours."""
