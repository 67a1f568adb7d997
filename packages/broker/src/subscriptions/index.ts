export { DeadLetterWriter } from './dead-letter.js';
export { SubscriptionDeliveries } from './deliveries.js';
export { SubscriptionMetrics } from './metrics.js';
