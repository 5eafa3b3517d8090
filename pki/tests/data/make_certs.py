#!/usr/bin/env python3
"""Writes the EK certificate fixtures of pki/tests/ek_chain.rs (DER) into this
directory, with the `cryptography` package. Run once; the outputs are committed.

Hierarchy: root (P-256, CA, self-signed) -> intermediate (P-256, CA, pathlen 0)
-> EK certificates shaped like the TCG EK Credential Profile: empty subject,
critical subjectAltName directoryName with TPM manufacturer/model/version,
EKU 2.23.133.8.1. Validity 2020-01-01 .. 2040-01-01 unless said otherwise.
"""
import datetime
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

HERE = os.path.dirname(os.path.abspath(__file__))
T0 = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
T1 = datetime.datetime(2040, 1, 1, tzinfo=datetime.timezone.utc)


def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def ca(subject, key, issuer_name, issuer_key, path_len, ca_flag=True, cert_sign=True):
    b = (x509.CertificateBuilder()
         .subject_name(name(subject)).issuer_name(issuer_name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(T0).not_valid_after(T1)
         .add_extension(x509.BasicConstraints(ca=ca_flag, path_length=path_len if ca_flag else None), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                      key_encipherment=False, data_encipherment=False,
                                      key_agreement=False, key_cert_sign=cert_sign, crl_sign=cert_sign,
                                      encipher_only=False, decipher_only=False), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if issuer_key is not key:
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def ek_cert(ek_pub, issuer_cert, issuer_key, *, not_after=T1, extra=None):
    tpm = x509.Name([x509.RelativeDistinguishedName([
        x509.NameAttribute(ObjectIdentifier("2.23.133.2.1"), "id:54455354"),
        x509.NameAttribute(ObjectIdentifier("2.23.133.2.2"), "testmodel"),
        x509.NameAttribute(ObjectIdentifier("2.23.133.2.3"), "id:00010002"),
    ])])
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([])).issuer_name(issuer_cert.subject)
         .public_key(ek_pub).serial_number(0x0102030405)
         .not_valid_before(T0).not_valid_after(not_after)
         .add_extension(x509.SubjectAlternativeName([x509.DirectoryName(tpm)]), critical=True)
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.ExtendedKeyUsage([ObjectIdentifier("2.23.133.8.1")]), critical=False)
         .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                      key_encipherment=False, data_encipherment=False,
                                      key_agreement=True, key_cert_sign=False, crl_sign=False,
                                      encipher_only=False, decipher_only=False), critical=True)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False))
    if extra is not None:
        b = b.add_extension(extra, critical=True)
    return b.sign(issuer_key, hashes.SHA256())


def save(fname, cert):
    with open(os.path.join(HERE, fname), "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.DER))


def main():
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = ca("Test EK Root", root_key, name("Test EK Root"), root_key, path_len=1)
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter = ca("Test EK Issuer", inter_key, root.subject, root_key, path_len=0)
    ek_key = ec.generate_private_key(ec.SECP384R1())
    save("root.der", root)
    with open(os.path.join(HERE, "root.pem"), "wb") as f:
        f.write(b"a comment before the block\n" + root.public_bytes(serialization.Encoding.PEM))
    save("intermediate.der", inter)
    save("ek-p384.der", ek_cert(ek_key.public_key(), inter, inter_key))
    save("ek-p384-expired.der", ek_cert(ek_key.public_key(), inter, inter_key,
                                        not_after=datetime.datetime(2021, 1, 1, tzinfo=datetime.timezone.utc)))
    save("ek-p384-unknown-critical.der", ek_cert(
        ek_key.public_key(), inter, inter_key,
        extra=x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.32473.1"), b"\x05\x00")))
    # An "intermediate" that is not a CA, and an EK certificate it signed.
    leafy_key = ec.generate_private_key(ec.SECP256R1())
    leafy = ca("Test Not A CA", leafy_key, root.subject, root_key, path_len=None, ca_flag=False, cert_sign=False)
    save("not-ca.der", leafy)
    save("ek-under-not-ca.der", ek_cert(ek_key.public_key(), leafy, leafy_key))
    # A second-level intermediate under `inter` (pathlen 0 forbids it).
    deep_key = ec.generate_private_key(ec.SECP256R1())
    deep = ca("Test Deep Issuer", deep_key, inter.subject, inter_key, path_len=None)
    save("deep-intermediate.der", deep)
    save("ek-under-deep.der", ek_cert(ek_key.public_key(), deep, deep_key))
    # The EK's own public key, for the match check: uncompressed point.
    with open(os.path.join(HERE, "ek-p384-point.bin"), "wb") as f:
        f.write(ek_key.public_key().public_bytes(serialization.Encoding.X962,
                                                 serialization.PublicFormat.UncompressedPoint))


main()
