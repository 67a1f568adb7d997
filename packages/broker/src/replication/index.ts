export * from './divergence.js';
export * from './ports.js';
export * from './follower/apply.js';
export * from './leader/exchange.js';
export * from './leader/secondary-sync.js';
