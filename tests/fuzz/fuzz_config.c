/* libFuzzer target for the config parser: any bytes, as if read from a file. Everything the
 * parser allocates must be released on every path, valid config or not. */
#include <stddef.h>
#include <stdint.h>

#include "tollgate/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tg_errors_t errs;

    tg_errors_init(&errs);
    tg_config_t *cfg = tg_config_parse((const char *)data, size, "fuzz.yaml", &errs);
    /* A config is returned exactly when no error was added. */
    if ((cfg != NULL) != (errs.nerrors == 0))
        __builtin_trap();
    tg_config_free(cfg);
    tg_errors_free(&errs);
    return 0;
}
