export * from './coordinator-link.js';
export * from './reconcile.js';
