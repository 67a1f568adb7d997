/**
 * The environment variable of the services' `--stop-on-stdin-end`: a supervisor (`tessera dev`,
 * the test harness) that holds the other end of a service's standard input sets it so that the
 * service stops when that input ends. When the supervisor dies in any way, SIGKILL included, the
 * pipe closes and its services stop with it instead of living on and holding their ports.
 */
export const STOP_ON_STDIN_END_ENV = 'TESSERA_STOP_ON_STDIN_END';
