/** Programmatic entry points of the CLI (the executable is `bin.ts`). */
export { main, buildProgram, VERSION } from './program.js';
export { DevCluster, type DevOptions } from './dev/supervisor.js';
export { readDevState, type DevState, type DevProcess } from './dev/state.js';
export { lineToRecord, LineSplitter } from './produce/lines.js';
export { LatencyHistogram } from './bench/histogram.js';
