/* The five ALB security policies, exactly: versions, TLS 1.2-and-older suites in the
 * order we prefer them, TLS 1.3 suites, and the security level each needs. */
#include "tollgate/tls.h"

#define ECDHE_SUITES                                                                               \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256:"                                           \
    "ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES256-SHA384:"                                           \
    "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:"                                                 \
    "ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA"

#define LEGACY_SUITES                                                                              \
    ECDHE_SUITES ":AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-SHA256:AES256-SHA256:"               \
                 "AES128-SHA:AES256-SHA:DES-CBC3-SHA"

#define TLS13_SUITES                                                                               \
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:"                  \
    "TLS_AES_128_CCM_SHA256:TLS_AES_128_CCM_8_SHA256"

/* TLS 1.0/1.1 sign the handshake with MD5+SHA-1 and 3DES has 112-bit strength: OpenSSL 3
 * refuses them above security level 0, so those policies get level 0 on their own contexts
 * only; 1_2 needs level 1 for 3DES. The strict ones get level 2 whatever the system openssl.cnf
 * says. */
static const tg_tls_policy_t policies[TG_POLICY_COUNT] = {
    [TG_POLICY_1_0] = {"tls_cipher_policy_1_0", TLS1_VERSION, TLS1_2_VERSION, LEGACY_SUITES, "", 0},
    [TG_POLICY_1_1] = {"tls_cipher_policy_1_1", TLS1_1_VERSION, TLS1_2_VERSION, LEGACY_SUITES, "",
                       0},
    [TG_POLICY_1_2] = {"tls_cipher_policy_1_2", TLS1_2_VERSION, TLS1_2_VERSION, LEGACY_SUITES, "",
                       1},
    [TG_POLICY_1_2_STRICT] = {"tls_cipher_policy_1_2_strict", TLS1_2_VERSION, TLS1_2_VERSION,
                              ECDHE_SUITES, "", 2},
    [TG_POLICY_1_2_STRICT_WITH_1_3] = {"tls_cipher_policy_1_2_strict_with_1_3", TLS1_2_VERSION,
                                       TLS1_3_VERSION, ECDHE_SUITES, TLS13_SUITES, 2},
};

const tg_tls_policy_t *tg_tls_policy(tg_policy_t p)
{
    if ((unsigned)p >= TG_POLICY_COUNT)
        return NULL;
    return &policies[p];
}
