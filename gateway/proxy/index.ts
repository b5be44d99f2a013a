/**
 * The enterprise proxy: plain OpenAI API inside, verified and encrypted
 * requests outside (server.ts), with its config (config.ts), provider pool
 * (pool.ts), audit file (audit.ts) and error registry (errors.ts).
 */
export { buildProxy, type BuildProxyParameters } from './server.ts'
export { startProxy, type RunningProxy, type StartProxyOptions } from './main.ts'
export { apiKeyHash, loadProxyConfig, parseProxyConfig, DEFAULT_PROXY_LIMITS, type ModelRoute, type ProviderEntry, type ProxyConfig } from './config.ts'
export { createProviderPool, type ProviderPool, type ProviderPoolOptions } from './pool.ts'
export { AUDIT_FILE_REMOVED, openAuditLog, type AuditFile, type AuditLog, type AuditLogOptions, type AuditReceiptRecord, type AuditRefusalRecord, type AuditStatus } from './audit.ts'
export { PROXY_ERROR_CODES, ProxyError, isProxyError, openAiErrorBody, toProxyError, type ProxyErrorCode } from './errors.ts'
