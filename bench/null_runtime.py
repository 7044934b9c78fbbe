"""The harness's floor: a function process that answers every invocation at once (a minimal
Runtime API client with Python's http.client, no AWS calls). Its warm invocation time is what
the emulator and loopback HTTP add to every invocation of either contender."""

import http.client
import os

host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
connection = http.client.HTTPConnection(host, int(port))
while True:
    connection.request("GET", "/2018-06-01/runtime/invocation/next")
    answer = connection.getresponse()
    answer.read()
    request_id = answer.getheader("Lambda-Runtime-Aws-Request-Id")
    connection.request(
        "POST",
        f"/2018-06-01/runtime/invocation/{request_id}/response",
        body=b'{"statusCode": 202, "body": ""}',
    )
    connection.getresponse().read()
