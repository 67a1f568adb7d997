/**
 * Failpoints for tests only (like etcd's gofail): named places in the broker where a test can
 * make it fail on purpose, enabled by the environment variable TESSERA_FAILPOINTS, a comma
 * separated list of `name=action`. Without the variable (every real deployment) a failpoint is
 * one Map lookup that finds nothing.
 *
 * Actions: `exit` kills the process at once with SIGKILL (a crash: no shutdown, nothing
 * flushed or answered after that point).
 *
 * Failpoints: `produce-before-answer` — a primary whose flush is durable on itself and on its
 * in-sync secondary, before it answers the produce requests of that flush.
 */
const ACTIONS = new Set(['exit']);

function parse(spec: string | undefined): Map<string, string> {
  const points = new Map<string, string>();
  for (const item of (spec ?? '').split(',')) {
    if (item.trim() === '') continue;
    const [name, action] = item.split('=').map((part) => part.trim());
    if (!name || !action || !ACTIONS.has(action)) {
      throw new Error(`TESSERA_FAILPOINTS: "${item}" is not name=action with action one of ${[...ACTIONS].join(', ')}`);
    }
    points.set(name, action);
  }
  return points;
}

const enabled = parse(process.env.TESSERA_FAILPOINTS);

/** Runs the failpoint `name` when a test enabled it. */
export function failpoint(name: string): void {
  if (enabled.size === 0) return;
  const action = enabled.get(name);
  if (action === 'exit') {
    process.stderr.write(`failpoint ${name}: exiting (TESSERA_FAILPOINTS)\n`);
    process.kill(process.pid, 'SIGKILL');
  }
}
