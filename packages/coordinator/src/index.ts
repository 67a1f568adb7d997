export type { CoordinatorConfig } from './config.js';
