/** Workflow entry point for the worker's bundler: every workflow type the worker registers. */
export { accountGuard } from './account-guard';
