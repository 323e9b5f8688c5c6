/* The command line: which subcommand, which config file; everything else is a module's. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/opensslv.h>

#include "tollgate/cli.h"
#include "tollgate/runtime.h"

static int usage(void)
{
    fputs("usage: tollgate run -c FILE [--daemon]\n"
          "       tollgate check -c FILE\n"
          "       tollgate reload -c FILE\n"
          "       tollgate stop -c FILE\n"
          "       tollgate cert list|show ID -c FILE [--json]\n"
          "       tollgate listener list|show ID -c FILE [--json]\n"
          "       tollgate version\n",
          stderr);
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    const char *cmd = argv[1];
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("tollgate %s (%s)\n", TG_VERSION, OPENSSL_VERSION_TEXT);
        return 0;
    }
    if (strcmp(cmd, "cert") == 0)
        return tg_cli_cert(argc - 1, argv + 1);
    if (strcmp(cmd, "listener") == 0)
        return tg_cli_listener(argc - 1, argv + 1);
    const char *config = NULL;
    bool daemonize = false;
    for (int i = 2; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
            config = argv[++i];
        else if (strcmp(argv[i], "--daemon") == 0 && strcmp(cmd, "run") == 0)
            daemonize = true;
        else
            return usage();
    }
    if (config == NULL)
        return usage();
    if (strcmp(cmd, "run") == 0)
        return tg_runtime_run(config, daemonize);
    if (strcmp(cmd, "check") == 0)
        return tg_runtime_check(config);
    if (strcmp(cmd, "reload") == 0)
        return tg_runtime_reload_client(config);
    if (strcmp(cmd, "stop") == 0)
        return tg_runtime_stop(config);
    return usage();
}
