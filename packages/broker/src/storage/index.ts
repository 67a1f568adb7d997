export * from './batch-index.js';
export * from './broker-store.js';
export * from './legacy-migration.js';
