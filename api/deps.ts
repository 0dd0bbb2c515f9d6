import type { Registry } from 'prom-client';
import type { Services } from '../lib/services.js';
import type { HttpMetrics } from './metrics/registry.js';

/** What the routes need: the process's shared services plus this app's metrics. */
export interface AppDeps
  extends Pick<Services, 'config' | 'log' | 'prisma' | 'store' | 'temporal' | 'checks'> {
  metrics: { registry: Registry; http: HttpMetrics };
}
