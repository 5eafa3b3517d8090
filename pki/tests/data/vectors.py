#!/usr/bin/env python3
"""Known-answer vectors for pki's KDFa, KDFe and MakeCredential, computed from the
TPM 2.0 Library spec (Part 1 §11.4.9, §24) with Python's hashlib/hmac and the
`cryptography` package (ECDH, AES-CFB) -- independently of the Rust code.

Run: python3 pki/tests/data/vectors.py   (prints the constants the tests hold)
"""
import hashlib
import hmac
import struct

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

try:  # cryptography >= 47 keeps CFB among the "decrepit" modes
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:
    from cryptography.hazmat.primitives.ciphers.modes import CFB

H = {"sha256": hashlib.sha256, "sha384": hashlib.sha384}


def kdfa(h, key, label, ctx_u, ctx_v, bits):
    out, i = b"", 1
    while len(out) * 8 < bits:
        msg = struct.pack(">I", i) + label + b"\0" + ctx_u + ctx_v + struct.pack(">I", bits)
        out += hmac.new(key, msg, H[h]).digest()
        i += 1
    out = bytearray(out[: (bits + 7) // 8])
    if bits % 8:
        out[0] &= 0xFF >> (8 - bits % 8)
    return bytes(out)


def kdfe(h, z, label, party_u, party_v, bits):
    out, i = b"", 1
    while len(out) * 8 < bits:
        out += H[h](struct.pack(">I", i) + z + label + b"\0" + party_u + party_v).digest()
        i += 1
    return out[: (bits + 7) // 8]


def id_object(h, sym_bits, seed, name, credential):
    hlen = H[h]().digest_size
    sym_key = kdfa(h, seed, b"STORAGE", name, b"", sym_bits)
    plain = struct.pack(">H", len(credential)) + credential
    enc = Cipher(algorithms.AES(sym_key), CFB(b"\0" * 16)).encryptor()
    enc_identity = enc.update(plain) + enc.finalize()
    hmac_key = kdfa(h, seed, b"INTEGRITY", b"", b"", hlen * 8)
    integrity = hmac.new(hmac_key, enc_identity + name, H[h]).digest()
    body = struct.pack(">H", hlen) + integrity + enc_identity
    return struct.pack(">H", len(body)) + body


def ecc_vector(tag, curve, size, h, sym_bits, ek_scalar, eph_scalar, name, credential):
    ek = ec.derive_private_key(ek_scalar, curve)
    eph = ec.derive_private_key(eph_scalar, curve)
    qek = ek.public_key().public_numbers()
    qe = eph.public_key().public_numbers()
    z = eph.exchange(ec.ECDH(), ek.public_key())
    qe_x, qe_y = qe.x.to_bytes(size, "big"), qe.y.to_bytes(size, "big")
    qek_x, qek_y = qek.x.to_bytes(size, "big"), qek.y.to_bytes(size, "big")
    seed = kdfe(h, z, b"IDENTITY", qe_x, qek_x, H[h]().digest_size * 8)
    point = struct.pack(">H", size) + qe_x + struct.pack(">H", size) + qe_y
    secret = struct.pack(">H", len(point)) + point
    c = lambda n, b: print(f'const {tag}_{n}: &str = "{b.hex()}";')
    c("EK_X", qek_x)
    c("EK_Y", qek_y)
    c("Z", z)
    c("EPHEMERAL_X", qe_x)
    c("EPHEMERAL_Y", qe_y)
    c("SEED", seed)
    c("SECRET", secret)
    c("ID_OBJECT", id_object(h, sym_bits, seed, name, credential))


def main():
    x = bytes.fromhex
    print("// kdf.rs")
    print('const KDFA_STORAGE_SHA256: &str = "%s";' % kdfa(
        "sha256", x("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"),
        b"STORAGE", x("000b" + "11" * 32), b"", 128).hex())
    print('const KDFA_TWO_BLOCKS_SHA384: &str = "%s";' % kdfa(
        "sha384", b"a key", b"INTEGRITY", b"u", b"v", 8 * 80).hex())
    print('const KDFA_12_BITS_SHA256: &str = "%s";' % kdfa("sha256", b"k", b"L", b"", b"", 12).hex())
    print('const KDFE_IDENTITY_SHA256: &str = "%s";' % kdfe(
        "sha256", x("5f3a0c0e2b6d1a5e8c7f4e3d2c1b0a99887766554433221100ffeeddccbbaa98"),
        b"IDENTITY", b"\x11" * 32, b"\x22" * 32, 256).hex())
    print('const KDFE_TWO_BLOCKS_SHA256: &str = "%s";' % kdfe(
        "sha256", b"zz", b"IDENTITY", b"U", b"V", 8 * 40).hex())

    print("// tests/make_credential.rs")
    name256 = x("000b" + "ab" * 32)
    name384 = x("000c" + "cd" * 48)
    credential = bytes(range(1, 33))
    seed = bytes(range(0x40, 0x60))
    print('const RSA_SEED: &str = "%s";' % seed.hex())
    print('const RSA_ID_OBJECT: &str = "%s";' % id_object("sha256", 128, seed, name256, credential).hex())
    seed384 = bytes(range(0x80, 0xB0))
    print('const SHA384_SEED: &str = "%s";' % seed384.hex())
    print('const SHA384_AES256_ID_OBJECT: &str = "%s";' % id_object(
        "sha384", 256, seed384, name384, credential[:16]).hex())
    ecc_vector("P256", ec.SECP256R1(), 32, "sha256", 128,
               0x1234567890ABCDEF1234567890ABCDEF1234567890ABCDEF1234567890ABCDEF,
               0x0FEDCBA9876543210FEDCBA9876543210FEDCBA9876543210FEDCBA98765432,
               name256, credential)
    ecc_vector("P384", ec.SECP384R1(), 48, "sha384", 256,
               0x1234567890ABCDEF1234567890ABCDEF1234567890ABCDEF1234567890ABCDEF1234567890ABCDEF12345678,
               0x0FEDCBA9876543210FEDCBA9876543210FEDCBA9876543210FEDCBA9876543210FEDCBA987654321,
               name384, credential)


main()
