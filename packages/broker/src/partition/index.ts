export * from './partition.js';
export * from './partition-set.js';
