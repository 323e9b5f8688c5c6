/* cli: the admin client commands (`tollgate cert ...`, `tollgate listener ...`): they call
 * the running instance's admin API with the address and token of its config file and print
 * tables, or the API's JSON with --json. Exit codes as SPEC §2: 0, 1 (the call failed or
 * was refused), 2 (usage). */
#ifndef TOLLGATE_CLI_H
#define TOLLGATE_CLI_H

/* argv[0] is the command ("cert" or "listener"). */
int tg_cli_cert(int argc, char **argv);
int tg_cli_listener(int argc, char **argv);

#endif
