// Workflow entry for the worker's bundle: every workflow the main task queue runs.
export { taskWorkflow } from './task.js';
export { withdrawalWorkflow } from './withdrawal.js';
