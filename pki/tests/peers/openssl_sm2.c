/* The independent SM2 peer of pki/tests/sm2_verify.rs: Debian's OpenSSL
 * (libcrypto 3.0) makes SM2 keys and signs random 32-byte digests as
 * they are (the e of GB/T 32918.2, as a TPM quote's digest is signed),
 * and verifies the digest with one bit flipped.
 *
 * usage: openssl_sm2 N CHECK
 * prints N lines: PUB(65 bytes, uncompressed) E(32) SIG(DER), hex and
 * space-separated; every CHECK-th line also E2 (E with one bit flipped)
 * and OK2 (1 if OpenSSL accepts SIG over E2, else 0).
 * Built by the test with cc and -lcrypto. */
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/core_names.h>
#include <stdio.h>
#include <stdlib.h>

static void hex(const unsigned char *b, size_t n) {
    for (size_t i = 0; i < n; i++) printf("%02x", b[i]);
}

static int die(const char *what) {
    fprintf(stderr, "openssl_sm2: %s failed\n", what);
    return 1;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1;
    long check = argc > 2 ? atol(argv[2]) : 1;
    /* Every REPEAT-th key signs three digests, not one, so a verifier
     * that keeps tables for keys it has seen uses them on OpenSSL's
     * signatures too (0: never). */
    long repeat = argc > 3 ? atol(argv[3]) : 0;
    if (check < 1) check = 1;
    for (long i = 0; i < n; i++) {
        EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "SM2");
        if (!key) return die("keygen");
        unsigned char pub[65];
        size_t publen = 0;
        if (!EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub, &publen) || publen != 65)
            return die("public key");
        int signatures = repeat > 0 && i % repeat == 0 ? 3 : 1;
        for (int k = 0; k < signatures; k++) {
            unsigned char e[32], e2[32], sig[80];
            size_t siglen = sizeof sig;
            if (RAND_bytes(e, sizeof e) != 1) return die("random");
            EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
            if (!ctx || EVP_PKEY_sign_init(ctx) <= 0 || EVP_PKEY_sign(ctx, sig, &siglen, e, sizeof e) <= 0)
                return die("sign");
            EVP_PKEY_CTX_free(ctx);
            int ok2 = -1;
            if (k == 0 && i % check == 0) {
                /* Every CHECK-th key's first line also: OpenSSL's verdict on
                 * the digest with one bit flipped (verifying costs OpenSSL
                 * 0.4 ms). */
                for (int j = 0; j < 32; j++) e2[j] = e[j];
                e2[i % 32] ^= (unsigned char)(1u << (i % 8));
                ctx = EVP_PKEY_CTX_new(key, NULL);
                if (!ctx || EVP_PKEY_verify_init(ctx) <= 0) return die("verify init");
                ok2 = EVP_PKEY_verify(ctx, sig, siglen, e2, sizeof e2) == 1;
                EVP_PKEY_CTX_free(ctx);
            }
            hex(pub, publen); putchar(' ');
            hex(e, sizeof e); putchar(' ');
            hex(sig, siglen);
            if (ok2 >= 0) {
                putchar(' ');
                hex(e2, sizeof e2);
                printf(" %d", ok2);
            }
            putchar('\n');
        }
        EVP_PKEY_free(key);
    }
    return 0;
}
