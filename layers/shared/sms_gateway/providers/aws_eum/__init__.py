"""AWS End User Messaging SMS (boto3's `pinpoint-sms-voice-v2`): SendTextMessage to send, a
configuration set's event destination (SNS, then SQS) to hear what became of a message."""
