/* What the files of the admin module share. */
#ifndef TOLLGATE_ADMIN_INTERNAL_H
#define TOLLGATE_ADMIN_INTERNAL_H

#include <stddef.h>
#include <time.h>

#include <jansson.h>

#include "tollgate/admin.h"
#include "tollgate/generation-t.h"

/* views.c: JSON of certificate i and listener i of g (new references). */
json_t *tg__admin_cert_view(const tg_generation_t *g, size_t i, time_t now);
json_t *tg__admin_listener_view(const tg_generation_t *g, size_t i);
/* The problems of one severity, each a "FILE:LINE:COL: message" string. */
json_t *tg__admin_problems(const tg_errors_t *errs, tg_severity_t sev);

#endif
