export * from './partition-replica.js';
export * from './replica-set.js';
