"""Local DynamoDB + SQS wire endpoint for the tests (moto), single-threaded.

Real DynamoDB serialises conditional writes per item; moto's stock threaded server does not,
so two concurrent conditional puts could both succeed. One request at a time keeps the tests honest.

Usage: local_aws.py HOST PORT
"""

import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, app, threaded=False, use_reloader=False, use_debugger=False)


if __name__ == "__main__":
    main()
