/** `vmimg serve`: the pull-through caching registry (see server.ts). */
export { startServe, parseListen, DEFAULT_LISTEN, DEFAULT_TAG_TTL_MS, type ServeOptions, type RunningServe, type AccessRecord, type PrepareRecord } from './server.js';
export { ServeMetrics } from './metrics.js';
export type { BudgetLimits } from './budget.js';
