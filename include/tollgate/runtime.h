/* runtime: the running daemon: worker threads with an event loop each, the listening
 * socket inventory, generation publishing, signals and the control commands. */
#ifndef TOLLGATE_RUNTIME_H
#define TOLLGATE_RUNTIME_H

#include <stdbool.h>

/* `tollgate run`: returns the process exit code. */
int tg_runtime_run(const char *config_path, bool daemonize);
/* `tollgate check`: load everything, print every problem; returns the exit code. */
int tg_runtime_check(const char *config_path);
/* `tollgate reload`: ask the running instance (found through the config's pid file
 * location) to reload config_path; prints the new generation or the problems. */
int tg_runtime_reload_client(const char *config_path);
/* `tollgate stop`: signal the instance named by the config's pid file and wait for it
 * to exit. Returns the exit code. */
int tg_runtime_stop(const char *config_path);

#endif
