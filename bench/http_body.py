"""Reading an HTTP/1.1 request body (Content-Length or chunked) for the benchmark's small
servers (bench/lambda_harness.py's Runtime API emulator, bench/local_aws_timed.py)."""


def read_body(rfile, headers):
    if headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int(rfile.readline().strip().split(b";")[0] or b"0", 16)
            if size == 0:
                # Trailers, up to the empty line that ends the request.
                while rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(rfile.read(size))
            rfile.readline()
    length = int(headers.get("Content-Length") or 0)
    return rfile.read(length) if length else b""
