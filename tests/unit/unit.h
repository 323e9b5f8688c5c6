/* What several unit test files need: a listening socket on a free loopback port, and a
 * configuration parsed from text that must be valid. Include after cmocka.h. */
#ifndef TOLLGATE_TESTS_UNIT_H
#define TOLLGATE_TESTS_UNIT_H

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "tollgate/config.h"
#include "tollgate/core.h"

/* A listening TCP socket on 127.0.0.1 and a port the kernel chose (in *port). */
static inline int unit_listen_any(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    *port = ntohs(sin.sin_port);
    return fd;
}

/* The configuration in yaml; the test fails (with the problems printed) if it is not valid. */
static inline tg_config_t *unit_config(const char *yaml)
{
    tg_errors_t errs;
    tg_errors_init(&errs);
    tg_config_t *cfg = tg_config_parse(yaml, strlen(yaml), "t.yaml", &errs);
    if (cfg == NULL)
        tg_errors_print(&errs, stderr);
    assert_non_null(cfg);
    tg_errors_free(&errs);
    return cfg;
}

#endif
