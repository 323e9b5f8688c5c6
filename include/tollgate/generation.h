/* generation: building one (every certificate loaded, every TLS context built) from a
 * config. Connections hold a reference for their whole life, so a reload never changes
 * what an established connection sees; the types and the reference counting are in
 * generation-t.h. */
#ifndef TOLLGATE_GENERATION_H
#define TOLLGATE_GENERATION_H

#include "tollgate/generation-t.h"

/* Load every certificate and build every context of cfg (taking ownership of it).
 * Returns a generation holding one reference, or NULL with every problem in errs (cfg is
 * freed then). */
tg_generation_t *tg_generation_build(tg_config_t *cfg, tg_errors_t *errs);

#endif
