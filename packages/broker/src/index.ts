/** `@tessera/broker`: the data plane. `startBroker(config)` runs one broker in this process. */
export { startBroker, type BrokerOptions, type RunningBroker } from './broker.js';
export { DEFAULT_CONFIG, DEFAULT_LIMITS, type BrokerConfig, type BrokerLimits } from './config.js';
export type { Durability } from './storage/index.js';
