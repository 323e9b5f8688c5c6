/* Prometheus text exposition of what the runtime knows: generations, reloads,
 * connections, certificate expiry and backend health. */
#include <stdio.h>
#include <stdlib.h>

#include "tollgate/admin.h"
#include "tollgate/tls.h"

/* Label values are operator-chosen ids and addresses; escape what the format asks. */
static void put_label(FILE *f, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            fputc('\\', f);
        if (*v == '\n') {
            fputs("\\n", f);
            continue;
        }
        fputc(*v, f);
    }
}

static void put_handshakes(const tg_tls_stats_t *st, void *arg)
{
    FILE *f = arg;
    fputs("tollgate_handshakes_total{listener=\"", f);
    put_label(f, st->listener);
    unsigned long failed = 0;
    for (int r = 0; r < TG_TLS_FAIL_COUNT; r++)
        failed += atomic_load_explicit(&st->failures[r], memory_order_relaxed);
    fprintf(f, "\",result=\"success\"} %lu\n", atomic_load(&st->handshakes));
    fputs("tollgate_handshakes_total{listener=\"", f);
    put_label(f, st->listener);
    fprintf(f, "\",result=\"failure\"} %lu\n", failed);
}

static void put_failures(const tg_tls_stats_t *st, void *arg)
{
    FILE *f = arg;
    for (int r = 0; r < TG_TLS_FAIL_COUNT; r++) {
        fputs("tollgate_handshake_failures_total{listener=\"", f);
        put_label(f, st->listener);
        fprintf(f, "\",reason=\"%s\"} %lu\n", tg_tls_fail_name((tg_tls_fail_t)r),
                atomic_load_explicit(&st->failures[r], memory_order_relaxed));
    }
}

char *tg_admin_metrics(const tg_generation_t *g, const tg_admin_stats_t *st, size_t *len)
{
    char *out = NULL;
    FILE *f = open_memstream(&out, len);
    fprintf(f,
            "# HELP tollgate_config_generation Number of the published configuration generation.\n"
            "# TYPE tollgate_config_generation gauge\n"
            "tollgate_config_generation %llu\n"
            "# HELP tollgate_reloads_total Reloads by outcome.\n"
            "# TYPE tollgate_reloads_total counter\n"
            "tollgate_reloads_total{result=\"success\"} %llu\n"
            "tollgate_reloads_total{result=\"failed\"} %llu\n"
            "# HELP tollgate_connections_open Open client connections.\n"
            "# TYPE tollgate_connections_open gauge\n"
            "tollgate_connections_open %llu\n",
            (unsigned long long)st->generation, (unsigned long long)st->reloads_ok,
            (unsigned long long)st->reloads_failed, (unsigned long long)st->connections);

    fputs("# HELP tollgate_handshakes_total TLS handshakes by outcome.\n"
          "# TYPE tollgate_handshakes_total counter\n",
          f);
    tg_tls_stats_each(put_handshakes, f);
    fputs("# HELP tollgate_handshake_failures_total Failed TLS handshakes by reason.\n"
          "# TYPE tollgate_handshake_failures_total counter\n",
          f);
    tg_tls_stats_each(put_failures, f);

    fputs("# HELP tollgate_certificate_not_after_seconds Expiry of each certificate (Unix time).\n"
          "# TYPE tollgate_certificate_not_after_seconds gauge\n",
          f);
    for (size_t i = 0; i < g->cfg->ncerts; i++) {
        fputs("tollgate_certificate_not_after_seconds{certificate=\"", f);
        put_label(f, g->certs[i]->id);
        fprintf(f, "\"} %lld\n", (long long)g->certs[i]->not_after);
    }

    fputs("# HELP tollgate_backend_server_up Whether a backend server is in rotation.\n"
          "# TYPE tollgate_backend_server_up gauge\n",
          f);
    uint64_t now = tg_now_ms();
    for (size_t i = 0; i < g->cfg->nbackends; i++) {
        const tg_backend_t *b = &g->backends[i];
        for (size_t j = 0; j < b->nservers; j++) {
            fputs("tollgate_backend_server_up{backend=\"", f);
            put_label(f, b->conf->id);
            fputs("\",server=\"", f);
            put_label(f, b->servers[j].conf->text);
            fprintf(f, "\"} %d\n", tg_backend_server_usable(&b->servers[j], now) ? 1 : 0);
        }
    }
    fclose(f);
    return out;
}
