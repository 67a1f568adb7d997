export * from './divergence.js';
export * from './ports.js';
export * from './receive.js';
export * from './secondary-sync.js';
