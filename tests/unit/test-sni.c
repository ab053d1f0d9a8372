/* SPDX-License-Identifier: Apache-2.0 */
/* broker/egress/sni.c: the ClientHello's server name, from real ClientHellos
 * (OpenSSL's libssl writing into a memory BIO) and from hand-made ones. */
#include <string.h>

#include <openssl/bio.h>
#include <openssl/ssl.h>

#include "cbtest.h"
#include "sni.h"

/* The first flight of a real TLS client (OpenSSL) asking for name (NULL:
 * no SNI), max TLS version v (0: the default). */
static size_t real_hello(const char *name, int v, unsigned char *out, size_t cap) {
        SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
        ASSERT_TRUE(ctx);
        if (v)
                ASSERT_TRUE(SSL_CTX_set_max_proto_version(ctx, v));
        SSL *s = SSL_new(ctx);
        BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
        ASSERT_TRUE(s && rb && wb);
        SSL_set_bio(s, rb, wb);
        if (name)
                ASSERT_TRUE(SSL_set_tlsext_host_name(s, name));
        SSL_set_connect_state(s);
        ASSERT_TRUE(SSL_do_handshake(s) <= 0); /* waits for the server */
        int n = BIO_read(wb, out, (int)cap);
        ASSERT_TRUE(n > 0);
        SSL_free(s);
        SSL_CTX_free(ctx);
        return (size_t)n;
}

TEST(real_client_hellos) {
        unsigned char h[CB_SNI_INPUT_MAX];
        char name[CB_SNI_NAME_MAX + 1];
        const char *why;
        size_t n = real_hello("API.GitHub.com", 0, h, sizeof(h));

        ASSERT_EQ(cb_sni_parse(h, n, name, &why), CB_SNI_FOUND);
        ASSERT_TRUE(strcmp(name, "api.github.com") == 0);
        /* Every strict prefix asks for more, never a wrong answer. */
        for (size_t k = 1; k < n; k++)
                ASSERT_EQ(cb_sni_parse(h, k, name, &why), CB_SNI_MORE);
        /* TLS 1.2 only. */
        n = real_hello("files.pythonhosted.org", TLS1_2_VERSION, h, sizeof(h));
        ASSERT_EQ(cb_sni_parse(h, n, name, &why), CB_SNI_FOUND);
        ASSERT_TRUE(strcmp(name, "files.pythonhosted.org") == 0);
        /* No SNI at all (e.g. a client dialling an IP literal). */
        n = real_hello(NULL, 0, h, sizeof(h));
        ASSERT_EQ(cb_sni_parse(h, n, name, &why), CB_SNI_NONE);
        ASSERT_EQ(name[0], '\0');
}

TEST(split_across_records) {
        unsigned char h[CB_SNI_INPUT_MAX], s[CB_SNI_INPUT_MAX];
        char name[CB_SNI_NAME_MAX + 1];
        size_t n = real_hello("example.org", 0, h, sizeof(h)), k = 0;
        size_t body = n - 5;

        /* The one record's payload cut into records of 7 bytes. */
        for (size_t off = 0; off < body; off += 7) {
                size_t len = body - off < 7 ? body - off : 7;
                s[k++] = 0x16, s[k++] = 3, s[k++] = 1, s[k++] = 0, s[k++] = (unsigned char)len;
                memcpy(s + k, h + 5 + off, len);
                k += len;
        }
        ASSERT_EQ(cb_sni_parse(s, k, name, NULL), CB_SNI_FOUND);
        ASSERT_TRUE(strcmp(name, "example.org") == 0);
}

TEST(refusals) {
        unsigned char h[CB_SNI_INPUT_MAX];
        char name[CB_SNI_NAME_MAX + 1];
        size_t n = real_hello("example.org", 0, h, sizeof(h));

        ASSERT_EQ(cb_sni_parse((const unsigned char *)"GET / HTTP/1.1\r\n", 16, name, NULL), CB_SNI_NOT_TLS);
        ASSERT_EQ(cb_sni_parse((const unsigned char *)"\x17\x03\x03\x00\x01x", 6, name, NULL), CB_SNI_NOT_TLS);
        /* Trailing bytes after the hello inside its record. */
        unsigned char t[CB_SNI_INPUT_MAX];
        memcpy(t, h, n);
        size_t rl = ((size_t)t[3] << 8 | t[4]) + 1;
        t[3] = (unsigned char)(rl >> 8), t[4] = (unsigned char)rl, t[n] = 0;
        ASSERT_EQ(cb_sni_parse(t, n + 1, name, NULL), CB_SNI_MALFORMED);
        /* A length claiming more than the cap. */
        unsigned char big[] = { 0x16, 3, 1, 0, 4, 1, 0x01, 0x00, 0x00 };
        ASSERT_EQ(cb_sni_parse(big, sizeof(big), name, NULL), CB_SNI_TOO_LARGE);
        /* A name with a bad byte: the host name of the real hello altered. */
        memcpy(t, h, n);
        unsigned char *at = memmem(t, n, "example.org", 11);
        ASSERT_TRUE(at);
        at[3] = '/';
        ASSERT_EQ(cb_sni_parse(t, n, name, NULL), CB_SNI_MALFORMED);
        ASSERT_EQ(name[0], '\0');
        /* Input over the cap. */
        static unsigned char huge[CB_SNI_INPUT_MAX + 1];
        ASSERT_EQ(cb_sni_parse(huge, sizeof(huge), name, NULL), CB_SNI_TOO_LARGE);
}
