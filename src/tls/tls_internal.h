/* What the files of the tls module share and nobody else may use. */
#ifndef TOLLGATE_TLS_INTERNAL_H
#define TOLLGATE_TLS_INTERNAL_H

#include <openssl/ssl.h>

void tg__tls_tickets_attach(SSL_CTX *ctx);
void tg__tls_drain_errors(char *buf, size_t size);

#endif
