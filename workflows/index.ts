// Workflow entry for the worker's bundle: every workflow the main task queue runs.
export {};
