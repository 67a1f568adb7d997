export * from './partition-store.js';
