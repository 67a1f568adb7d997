export * from './errors.js';
export * from './limits.js';
export * from './partitioner.js';
export * from './retry.js';
export * from './routes.js';
export * from './schemas.js';
export * from './validate.js';
export type * from './wire.js';
export * from './http-client.js';
