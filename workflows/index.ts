// Workflow entry for the worker's bundle: every workflow the main task queue runs.

export { reaperWorkflow } from './reaper.js';
export { taskWorkflow } from './task.js';
export { withdrawalWorkflow } from './withdrawal.js';
