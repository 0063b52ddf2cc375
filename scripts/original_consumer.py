#!/usr/bin/env python3
"""scale-eks-with-keda's consumer's loop, as the CPU baseline of `make bench`: boto3, one
receive of up to 10 messages with their attributes, per message json.loads of the body and
one put_object of json.dumps(body) under
<prefix>/event_type=<type>/dt=<YYYY_MM_DD>/<epoch microseconds>.json, then one
delete_message_batch, then time.sleep(MSG_PROCESS_DELAY). DEBUG logging off. Exits after
TOT_MSGS_TO_PROCESS messages.

Environment: QUEUE_URL, STORE_EVENTS_BKT, S3_PREFIX (default "sales_events"),
MAX_MSGS_PER_BATCH (10), MSG_PROCESS_DELAY (0), TOT_MSGS_TO_PROCESS; the AWS SDK's own
settings (AWS_ENDPOINT_URL, AWS_REGION, credentials)."""
import datetime
import json
import logging
import os
import time

import boto3

logging.basicConfig(level=logging.INFO)

QUEUE_URL = os.environ["QUEUE_URL"]
BUCKET = os.environ["STORE_EVENTS_BKT"]
PREFIX = os.environ.get("S3_PREFIX", "sales_events")
BATCH = int(os.environ.get("MAX_MSGS_PER_BATCH", "10"))
DELAY = float(os.environ.get("MSG_PROCESS_DELAY", "0"))
TOTAL = int(os.environ["TOT_MSGS_TO_PROCESS"])

sqs = boto3.client("sqs")
s3 = boto3.client("s3")

done = 0
while done < TOTAL:
    response = sqs.receive_message(
        QueueUrl=QUEUE_URL,
        MaxNumberOfMessages=BATCH,
        MessageAttributeNames=["All"],
        WaitTimeSeconds=1,
    )
    messages = response.get("Messages", [])
    if not messages:
        continue
    for message in messages:
        body = json.loads(message["Body"])
        event_type = message["MessageAttributes"]["event_type"]["StringValue"]
        day = datetime.datetime.now().strftime("%Y_%m_%d")
        key = f"{PREFIX}/event_type={event_type}/dt={day}/{int(time.time() * 1_000_000)}.json"
        s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(body))
    sqs.delete_message_batch(
        QueueUrl=QUEUE_URL,
        Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
    )
    done += len(messages)
    time.sleep(DELAY)
