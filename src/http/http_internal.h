/* What the files of the http module share. */
#ifndef TOLLGATE_HTTP_INTERNAL_H
#define TOLLGATE_HTTP_INTERNAL_H

#include "tollgate/http.h"

/* The id of a header name (case-insensitive), TG_HDR_OTHER when it is none we act on. */
tg_http_header_id_t tg__http_header_id(const char *name, size_t len);

#endif
