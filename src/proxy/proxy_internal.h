/* What the files of the proxy module share. */
#ifndef TOLLGATE_PROXY_INTERNAL_H
#define TOLLGATE_PROXY_INTERNAL_H

#include "tollgate/proxy.h"

void tg__accesslog_write(const tg_exchange_t *ex);
/* Serialize the request head for the backend into ex->out. 0, or -1 when it cannot fit. */
int tg__proxy_write_head(tg_exchange_t *ex, const tg_http_request_t *req);

#endif
