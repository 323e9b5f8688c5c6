/* The words the config file uses for enumerations, in the order of their C enums, so that a
 * word's index is its value. */
#include "node.h"

const char *const tg__policy_words[] = {
    [TG_POLICY_1_0] = "tls_cipher_policy_1_0",
    [TG_POLICY_1_1] = "tls_cipher_policy_1_1",
    [TG_POLICY_1_2] = "tls_cipher_policy_1_2",
    [TG_POLICY_1_2_STRICT] = "tls_cipher_policy_1_2_strict",
    [TG_POLICY_1_2_STRICT_WITH_1_3] = "tls_cipher_policy_1_2_strict_with_1_3",
    [TG_POLICY_COUNT] = NULL,
};

const char *const tg__log_level_words[] = {
    [TG_LOG_ERROR] = "error", [TG_LOG_WARN] = "warn",    [TG_LOG_INFO] = "info",
    [TG_LOG_DEBUG] = "debug", [TG_LOG_DEBUG + 1] = NULL,
};

const char *tg_config_policy_name(tg_policy_t p)
{
    if ((unsigned)p >= TG_POLICY_COUNT)
        return NULL;
    return tg__policy_words[p];
}
