export * from './access.js';
export * from './client-auth.js';
export * from './http.js';
export * from './logger.js';
export * from './metrics.js';
export * from './shutdown.js';
export * from './cluster-identity.js';
export * from './flags.js';
