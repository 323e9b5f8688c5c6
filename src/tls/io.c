/* Non-blocking TLS I/O on one socket, folded into three outcomes: progress, would block
 * (and in which direction), or done with this connection. */
#include <errno.h>

#include <openssl/err.h>

#include "tollgate/tls.h"

static int outcome(SSL *ssl, int ret, int *want)
{
    switch (SSL_get_error(ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        *want = TG_WANT_READ;
        return TG_IO_AGAIN;
    case SSL_ERROR_WANT_WRITE:
        *want = TG_WANT_WRITE;
        return TG_IO_AGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    default:
        return TG_IO_ERROR;
    }
}

int tg_tls_handshake(SSL *ssl, int *want)
{
    int ret = SSL_do_handshake(ssl);
    if (ret == 1)
        return 1;
    int rc = outcome(ssl, ret, want);
    return rc == 0 ? TG_IO_ERROR : rc;
}

ssize_t tg_tls_read(SSL *ssl, void *buf, size_t len, int *want)
{
    size_t n;
    if (SSL_read_ex(ssl, buf, len, &n) == 1)
        return (ssize_t)n;
    int rc = outcome(ssl, 0, want);
    if (rc == TG_IO_ERROR) {
        /* A peer that closes without close_notify is an ordinary end of a keep-alive
         * connection for HTTP/1.1 clients, not an error worth a log line. */
        ERR_clear_error();
    }
    return rc;
}

ssize_t tg_tls_write(SSL *ssl, const void *buf, size_t len, int *want)
{
    size_t n;
    if (SSL_write_ex(ssl, buf, len, &n) == 1)
        return (ssize_t)n;
    int rc = outcome(ssl, 0, want);
    if (rc == 0 || rc == TG_IO_ERROR) {
        ERR_clear_error();
        return TG_IO_ERROR;
    }
    return rc;
}
