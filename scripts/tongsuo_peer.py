#!/usr/bin/env python3
"""An RFC 8998 peer for the interop tests: Tongsuo 8.3 (the PyPI wheel
`tongsuopy`, which bundles it) as a TLS 1.3 server or client with the
ShangMi suites, curveSM2 and sm2sig_sm3, in Tongsuo's strict SM mode.

    tongsuo_peer.py server --cert C --key K --ca CA --suite S [--keylog F]
        listens on 127.0.0.1 (a free port, printed as {"port": N}), takes one
        connection, requires a client certificate from CA, reads one line and
        answers "tongsuo: " + that line.
    tongsuo_peer.py client --port P --cert C --key K --ca CA --suite S [--keylog F]
        connects, sends "hello from tongsuo\\n", reads one line.

Both print one JSON line at the end: the negotiated suite and what was read,
or {"error": ...}. The key log (NSS format) lets the test compare Tongsuo's
traffic secrets with ours.
"""

import argparse
import ctypes
import json
import socket
import struct
import sys

import tongsuopy.backends._tongsuo as tongsuo_so
from tongsuopy.backends.tongsuo.binding import Binding

binding = Binding()
lib = binding.lib
ffi = binding.ffi

NID_SM2 = 1172
TLS1_3_VERSION = 0x0304
SSL_VERIFY_PEER = 0x01
SSL_VERIFY_FAIL_IF_NO_PEER_CERT = 0x02
SSL_FILETYPE_PEM = 1


def errors():
    out = []
    while True:
        e = lib.ERR_get_error()
        if e == 0:
            return "; ".join(out) or "no error queued"
        buf = ffi.new("char[256]")
        lib.ERR_error_string_n(e, buf, 256)
        out.append(ffi.string(buf).decode())


def check(ok, what):
    if not ok:
        raise RuntimeError(f"{what}: {errors()}")


def strict(ctx):
    """SSL_CTX_enable_sm_tls13_strict: exported by the bundled library but
    not declared in the cffi binding, so reached through ctypes on the same
    shared object (one process, one copy of the library)."""
    so = ctypes.CDLL(tongsuo_so.__file__)
    fn = so.SSL_CTX_enable_sm_tls13_strict
    fn.argtypes = [ctypes.c_void_p]
    fn.restype = None
    fn(int(ffi.cast("uintptr_t", ctx)))


def context(args, server):
    method = lib.TLS_server_method() if server else lib.TLS_client_method()
    ctx = lib.SSL_CTX_new(method)
    check(ctx != ffi.NULL, "SSL_CTX_new")
    check(lib.SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) == 1, "min version")
    check(lib.SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) == 1, "max version")
    check(lib.SSL_CTX_set_ciphersuites(ctx, args.suite.encode()) == 1, "ciphersuites")
    check(lib.SSL_CTX_set1_sigalgs_list(ctx, b"sm2sig_sm3") == 1, "sigalgs")
    key = lib.EC_KEY_new_by_curve_name(NID_SM2)
    check(key != ffi.NULL, "curveSM2")
    check(lib.SSL_CTX_set_tmp_ecdh(ctx, key) == 1, "tmp_ecdh curveSM2")
    check(
        lib.SSL_CTX_use_certificate_chain_file(ctx, args.cert.encode()) == 1,
        "certificate",
    )
    check(
        lib.SSL_CTX_use_PrivateKey_file(ctx, args.key.encode(), SSL_FILETYPE_PEM) == 1,
        "private key",
    )
    check(lib.SSL_CTX_load_verify_locations(ctx, args.ca.encode(), ffi.NULL) == 1, "CA")
    mode = SSL_VERIFY_PEER | (SSL_VERIFY_FAIL_IF_NO_PEER_CERT if server else 0)
    lib.SSL_CTX_set_verify(ctx, mode, ffi.NULL)
    strict(ctx)
    if args.keylog:
        log = open(args.keylog, "a")

        @ffi.callback("void(SSL *, char *)")
        def keylog(_ssl, line):
            log.write(ffi.string(line).decode() + "\n")
            log.flush()

        lib.SSL_CTX_set_keylog_callback(ctx, keylog)
        context.keep = (log, keylog)
    return ctx


def read_line(ssl):
    buf = ffi.new("char[4096]")
    data = b""
    while not data.endswith(b"\n"):
        n = lib.SSL_read(ssl, buf, 4096)
        if n <= 0:
            raise RuntimeError(f"SSL_read: {errors()}")
        data += ffi.buffer(buf, n)[:]
    return data


def write_all(ssl, data):
    n = lib.SSL_write(ssl, data, len(data))
    check(n == len(data), "SSL_write")


def suite_of(ssl):
    return ffi.string(lib.SSL_CIPHER_get_name(lib.SSL_get_current_cipher(ssl))).decode()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["server", "client"])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--suite", default="TLS_SM4_GCM_SM3")
    p.add_argument("--keylog")
    args = p.parse_args()
    result = {}
    try:
        ctx = context(args, args.mode == "server")
        if args.mode == "server":
            listener = socket.socket()
            listener.bind(("127.0.0.1", args.port))
            listener.listen(1)
            print(json.dumps({"port": listener.getsockname()[1]}), flush=True)
            listener.settimeout(30)
            sock, _ = listener.accept()
        else:
            sock = socket.create_connection(("127.0.0.1", args.port), timeout=30)
        # Blocking I/O for the library (a Python timeout makes the descriptor
        # non-blocking); SO_RCVTIMEO bounds a silent peer instead.
        sock.settimeout(None)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 30, 0))
        ssl = lib.SSL_new(ctx)
        lib.SSL_set_fd(ssl, sock.fileno())
        if args.mode == "server":
            lib.SSL_set_accept_state(ssl)
        else:
            lib.SSL_set_connect_state(ssl)
        check(lib.SSL_do_handshake(ssl) == 1, "handshake")
        result["suite"] = suite_of(ssl)
        if args.mode == "server":
            line = read_line(ssl)
            write_all(ssl, b"tongsuo: " + line)
            result["read"] = line.decode()
        else:
            write_all(ssl, b"hello from tongsuo\n")
            result["read"] = read_line(ssl).decode()
        lib.SSL_shutdown(ssl)
        sock.close()
    except Exception as e:  # the test reads the reason
        result["error"] = str(e)
    print(json.dumps(result), flush=True)
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    sys.exit(main())
