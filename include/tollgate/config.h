/* config: the YAML file as plain, validated data with the source position of every value.
 * No certificate is read here (that is the cert module's job, driven by the generation);
 * paths are resolved against the config file's directory. */
#ifndef TOLLGATE_CONFIG_H
#define TOLLGATE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "tollgate/core.h"

typedef struct tg_pos_s {
    int line; /* 1-based; 0 = not from the file (a default) */
    int col;
} tg_pos_t;

typedef enum { TG_CERT_SERVER = 0, TG_CERT_CA = 1 } tg_cert_type_t;

typedef struct tg_conf_cert_s {
    char *id;
    tg_pos_t pos; /* of the id key */
    tg_cert_type_t type;
    char *cert_path; /* resolved; required */
    tg_pos_t cert_pos;
    char *key_path; /* resolved; required for server, refused for ca */
    tg_pos_t key_pos;
    char *crl_path; /* resolved; optional, ca only */
    tg_pos_t crl_pos;
} tg_conf_cert_t;

typedef enum { TG_BALANCE_ROUND_ROBIN = 0, TG_BALANCE_LEAST_CONN = 1 } tg_balance_t;

typedef struct tg_conf_server_s {
    char *text; /* as written, for logs and metrics labels */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    tg_pos_t pos;
} tg_conf_server_t;

typedef struct tg_conf_health_s {
    bool enabled;
    char *path; /* starts with '/' */
    uint64_t interval_ms;
    uint64_t timeout_ms;
    unsigned rise;
    unsigned fall;
} tg_conf_health_t;

typedef struct tg_conf_backend_s {
    char *id;
    tg_pos_t pos;
    bool is_fixed; /* fixed_response instead of servers */
    /* servers */
    tg_conf_server_t *servers;
    size_t nservers;
    tg_balance_t balance;         /* default round_robin */
    uint64_t connect_timeout_ms;  /* default 3s */
    uint64_t response_timeout_ms; /* default 60s */
    unsigned max_fails;           /* failures within fail_timeout that take a server out;
                                   * 0 = never; default 1 */
    uint64_t fail_timeout_ms;     /* that window, and how long it stays out; default 10s */
    tg_conf_health_t health;
    /* fixed_response */
    unsigned fixed_status;    /* 100..599, default 200 */
    char *fixed_content_type; /* default "text/plain" */
    char *fixed_body;         /* default "" */
    size_t fixed_body_len;
} tg_conf_backend_t;

typedef enum { TG_PROTO_HTTPS = 0, TG_PROTO_QUIC = 1 } tg_proto_t;

typedef enum {
    TG_POLICY_1_0 = 0,
    TG_POLICY_1_1,
    TG_POLICY_1_2,
    TG_POLICY_1_2_STRICT,
    TG_POLICY_1_2_STRICT_WITH_1_3, /* the default */
    TG_POLICY_COUNT
} tg_policy_t;

/* "tls_cipher_policy_1_0" ... ; NULL for an out-of-range value. */
const char *tg_config_policy_name(tg_policy_t p);

typedef struct tg_conf_mtls_s {
    bool present; /* the key was written */
    tg_pos_t pos; /* of the mutual_auth key */
    bool enabled;
    size_t *cas; /* indexes into tg_config_t.certs, each of type ca */
    size_t ncas;
    unsigned verify_depth; /* default 3, 1..16 */
} tg_conf_mtls_t;

/* When a QUIC listener answers an Initial without a valid token with a Retry (an extra
 * round trip that proves the client owns its address). */
typedef enum {
    TG_RETRY_AUTO = 0, /* only while many handshakes are in flight (a flood) */
    TG_RETRY_ALWAYS,
    TG_RETRY_NEVER,
} tg_retry_t;

typedef struct tg_conf_listener_s {
    char *id;
    tg_pos_t pos;
    tg_proto_t protocol;
    char *listen_text;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    tg_pos_t listen_pos;
    size_t backend;       /* index into tg_config_t.backends */
    tg_pos_t backend_pos; /* line 0: the backend was not resolved */
    tg_policy_t policy;   /* ignored for quic (always TLS 1.3) */
    size_t default_cert;  /* index into tg_config_t.certs, type server */
    tg_pos_t default_cert_pos;
    size_t *extended; /* indexes into tg_config_t.certs, type server, no duplicates */
    size_t nextended;
    tg_conf_mtls_t mtls; /* https only: present on quic is an error */
    bool has_alt_svc;
    size_t alt_svc;   /* index into tg_config_t.listeners, protocol quic */
    tg_retry_t retry; /* quic only: when to validate client addresses with Retry */
} tg_conf_listener_t;

typedef struct tg_conf_limits_s {
    uint64_t max_connections;        /* default 100000 */
    uint64_t handshake_timeout_ms;   /* default 10s */
    uint64_t header_timeout_ms;      /* default 10s */
    uint64_t idle_timeout_ms;        /* default 60s */
    uint64_t max_header_bytes;       /* default 32768, 1024..1048576 */
    uint64_t max_concurrent_streams; /* per HTTP/2 or HTTP/3 connection: default 128, 1..1000 */
} tg_conf_limits_t;

typedef struct tg_config_s {
    char *path; /* as given */
    char *dir;  /* directory of path, for relative paths */
    struct {
        unsigned workers;          /* 0 = auto (online CPUs) */
        char *pid_file;            /* resolved; default "run/tollgate.pid" */
        char *certificate_dir;     /* resolved; default "certs/store" */
        tg_log_level_t log_level;  /* default info */
        char *access_log;          /* "stderr" | "stdout" | "off" | resolved path; default stderr */
        uint64_t drain_timeout_ms; /* default 30s */
        tg_conf_limits_t limits;
    } global;
    struct {
        bool enabled;
        char *listen;     /* "127.0.0.1:9900" or "unix:/resolved/path" */
        char *token_file; /* resolved; required when listen is TCP */
        tg_pos_t pos;
    } admin;
    tg_conf_cert_t *certs;
    size_t ncerts;
    tg_conf_backend_t *backends;
    size_t nbackends;
    tg_conf_listener_t *listeners;
    size_t nlisteners;
} tg_config_t;

/* Parse and validate the file. Returns the config, or NULL with every problem in errs
 * (positions "path:line:col"). Warnings may be added on success too. */
tg_config_t *tg_config_load(const char *path, tg_errors_t *errs);
/* The same from memory; `path` is used for messages and to resolve relative paths. */
tg_config_t *tg_config_parse(const char *buf, size_t len, const char *path, tg_errors_t *errs);
void tg_config_free(tg_config_t *cfg);

/* Lookups by id; -1 when absent. */
ssize_t tg_config_find_cert(const tg_config_t *cfg, const char *id);
ssize_t tg_config_find_backend(const tg_config_t *cfg, const char *id);
ssize_t tg_config_find_listener(const tg_config_t *cfg, const char *id);

#endif
