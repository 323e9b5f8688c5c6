/* The admin client: one HTTP call to the instance a config file describes, over its TCP or
 * unix admin listener (libcurl: both, and TLS once the admin API serves it), and the
 * helpers every command's output uses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "cli_internal.h"
#include "tollgate/admin.h"
#include "tollgate/config.h"

/* An answer bigger than this is not the admin API's. */
#define ANSWER_MAX (16u << 20)

bool tg__cli_args(int argc, char **argv, tg__cli_args_t *a)
{
    *a = (tg__cli_args_t){0};
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
            a->config = argv[++i];
        else if (strcmp(argv[i], "--json") == 0)
            a->json = true;
        else if ((argv[i][0] == '-' && argv[i][1] != '\0') ||
                 a->nrest == (int)(sizeof(a->rest) / sizeof(a->rest[0])))
            return false;
        else
            a->rest[a->nrest++] = argv[i];
    }
    return a->config != NULL;
}

typedef struct answer_s {
    char *data;
    size_t len;
    bool too_big;
} answer_t;

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    answer_t *a = arg;
    size_t len = size * n;
    if (a->len + len > ANSWER_MAX) {
        a->too_big = true;
        return 0;
    }
    char *d = realloc(a->data, a->len + len + 1);
    if (d == NULL)
        return 0;
    memcpy(d + a->len, p, len);
    a->data = d;
    a->len += len;
    d[a->len] = '\0';
    return len;
}

/* The URL and, for a unix socket, its path; false when the listen value is not ours. */
static bool target(const tg_config_t *cfg, const char *path, char *url, size_t url_size,
                   const char **unix_path)
{
    const char *listen = cfg->admin.listen;
    *unix_path = NULL;
    if (strncmp(listen, "unix:", 5) == 0) {
        *unix_path = listen + 5;
        return snprintf(url, url_size, "http://localhost%s", path) < (int)url_size;
    }
    /* host:port, or [v6]:port: as written, which is what a URL wants. The wildcard
     * addresses are reached on loopback. */
    char host[300];
    snprintf(host, sizeof(host), "%s", listen);
    if (strncmp(host, "0.0.0.0:", 8) == 0)
        memcpy(host, "127.0.0.1", 9), memmove(host + 9, listen + 7, strlen(listen + 7) + 1);
    else if (strncmp(host, "[::]:", 5) == 0)
        snprintf(host, sizeof(host), "[::1]%s", listen + 4);
    return snprintf(url, url_size, "http://%s%s", host, path) < (int)url_size;
}

int tg__cli_call(const char *config, const char *method, const char *path, const char *body,
                 long *status, json_t **answer)
{
    tg_errors_t errs;
    tg_errors_init(&errs);
    tg_config_t *cfg = tg_config_load(config, &errs);
    if (cfg == NULL) {
        tg_errors_print(&errs, stderr);
        tg_errors_free(&errs);
        return -1;
    }
    int rc = -1;
    char *token = NULL;
    CURL *curl = NULL;
    struct curl_slist *hdrs = NULL;
    answer_t ans = {0};
    if (!cfg->admin.enabled) {
        fprintf(stderr, "tollgate: %s has no admin section: nothing to talk to\n", config);
        goto out;
    }
    bool unix_socket = strncmp(cfg->admin.listen, "unix:", 5) == 0;
    if (!unix_socket && (token = tg_admin_token_read(cfg, &errs)) == NULL) {
        tg_errors_print(&errs, stderr);
        goto out;
    }
    char url[512];
    const char *unix_path;
    if (!target(cfg, path, url, sizeof(url), &unix_path)) {
        fprintf(stderr, "tollgate: admin.listen %s: cannot make a URL of it\n", cfg->admin.listen);
        goto out;
    }
    curl = curl_easy_init();
    if (curl == NULL) {
        fprintf(stderr, "tollgate: cannot initialise libcurl\n");
        goto out;
    }
    if (token != NULL) {
        char auth[600];
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        hdrs = curl_slist_append(hdrs, auth);
    }
    if (body != NULL)
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    curl_easy_setopt(curl, CURLOPT_URL, url);
    if (unix_path != NULL)
        curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, unix_path);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    if (body != NULL)
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &ans);
    curl_easy_setopt(curl, CURLOPT_NOPROXY, "*"); /* an http_proxy variable must not see it */
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L); /* a change may load many certificates */
    CURLcode cc = curl_easy_perform(curl);
    if (cc != CURLE_OK) {
        fprintf(stderr, "tollgate: admin API at %s: %s\n", cfg->admin.listen,
                ans.too_big ? "answer too large" : curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
    *answer = ans.data != NULL ? json_loadb(ans.data, ans.len, 0, NULL) : NULL;
    rc = 0;
out:
    free(ans.data);
    curl_slist_free_all(hdrs);
    if (curl != NULL)
        curl_easy_cleanup(curl);
    free(token);
    tg_config_free(cfg);
    tg_errors_free(&errs);
    return rc;
}

int tg__cli_failed(long status, json_t *answer)
{
    const char *why = tg__cli_str(answer, "error");
    fprintf(stderr, "tollgate: %ld: %s\n", status, *why ? why : "(no error message)");
    json_t *problems = json_object_get(answer, "problems");
    size_t i;
    json_t *p;
    json_array_foreach(problems, i, p)
    {
        if (i > 0 && json_is_string(p)) /* the first one is the error itself */
            fprintf(stderr, "%s\n", json_string_value(p));
    }
    return 1;
}

int tg__cli_print_json(json_t *v)
{
    json_dumpf(v, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    fputc('\n', stdout);
    return 0;
}

const char *tg__cli_str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : "";
}

char *tg__cli_join(json_t *o, const char *key)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    json_t *arr = json_object_get(o, key);
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        fprintf(f, "%s%s", i ? ", " : "", json_is_string(v) ? json_string_value(v) : "?");
    }
    if (json_array_size(arr) == 0)
        fputc('-', f);
    fclose(f);
    return out;
}
